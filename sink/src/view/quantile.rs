//! Quantiles from histogram bucket counts, interpolated linearly inside the bucket as
//! Prometheus' `histogram_quantile` does.
//!
//! Owns the arithmetic only.

/// The `q` quantile of observations in `buckets`: `(upper bound, count in that bucket)` in
/// increasing bound order, the last bound usually `+Inf`. `None` without observations.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total: f64 = buckets.iter().map(|(_, n)| n).sum();
    if total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let highest_finite = buckets
        .iter()
        .rev()
        .map(|(le, _)| *le)
        .find(|le| le.is_finite());
    let rank = q * total;
    let mut below = 0.0;
    let mut lower = 0.0_f64;
    for (upper, count) in buckets {
        let cumulative = below + count;
        if cumulative >= rank && *count > 0.0 {
            if upper.is_infinite() {
                // In the +Inf bucket: the highest finite bound, as Prometheus answers.
                return highest_finite;
            }
            let lower = lower.min(*upper);
            let within = (rank - below) / count;
            return Some(lower + (upper - lower) * within);
        }
        below = cumulative;
        lower = *upper;
    }
    highest_finite
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_like_prometheus() {
        let buckets = |counts: [f64; 4]| {
            [10.0, 20.0, 40.0, f64::INFINITY]
                .into_iter()
                .zip(counts)
                .collect::<Vec<_>>()
        };
        // 10 in (0,10], 10 in (10,20], none above.
        let counts = buckets([10.0, 10.0, 0.0, 0.0]);
        assert_eq!(histogram_quantile(0.5, &counts), Some(10.0));
        assert_eq!(histogram_quantile(0.25, &counts), Some(5.0));
        assert_eq!(histogram_quantile(0.75, &counts), Some(15.0));
        assert_eq!(histogram_quantile(0.99, &counts), Some(19.8));
        assert_eq!(
            histogram_quantile(0.99, &buckets([0.0, 0.0, 0.0, 5.0])),
            Some(40.0)
        );
        assert_eq!(histogram_quantile(0.5, &buckets([0.0; 4])), None);
    }
}
