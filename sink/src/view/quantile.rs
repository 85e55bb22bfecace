//! Quantiles from histogram bucket counts, interpolated linearly inside the bucket as
//! Prometheus' `histogram_quantile` does.
//!
//! Owns the arithmetic only.

/// The `q` quantile of observations in buckets with upper `bounds` (finite, increasing) plus a
/// final `+Inf` bucket; `counts` are per bucket (not cumulative). `None` without observations.
pub fn histogram_quantile(q: f64, bounds: &[f64], counts: &[u64]) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() != bounds.len() + 1 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, count) in counts.iter().enumerate() {
        let cumulative = below + count;
        if cumulative as f64 >= rank && *count > 0 {
            if i == bounds.len() {
                // In the +Inf bucket: the highest finite bound, as Prometheus answers.
                return bounds.last().copied();
            }
            let upper = bounds[i];
            let lower = if i == 0 {
                0.0_f64.min(upper)
            } else {
                bounds[i - 1]
            };
            let within = (rank - below as f64) / *count as f64;
            return Some(lower + (upper - lower) * within);
        }
        below = cumulative;
    }
    bounds.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_like_prometheus() {
        let bounds = [10.0, 20.0, 40.0];
        // 10 in (0,10], 10 in (10,20], none above.
        let counts = [10, 10, 0, 0];
        assert_eq!(histogram_quantile(0.5, &bounds, &counts), Some(10.0));
        assert_eq!(histogram_quantile(0.25, &bounds, &counts), Some(5.0));
        assert_eq!(histogram_quantile(0.75, &bounds, &counts), Some(15.0));
        assert_eq!(histogram_quantile(0.99, &bounds, &counts), Some(19.8));
        assert_eq!(histogram_quantile(0.99, &bounds, &[0, 0, 0, 5]), Some(40.0));
        assert_eq!(histogram_quantile(0.5, &bounds, &[0, 0, 0, 0]), None);
    }
}
