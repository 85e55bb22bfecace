//! A cumulative Prometheus histogram over fixed bounds, rendered as `_bucket`/`_sum`/`_count`
//! lines; shared by the sidecar and istiod stand-ins.

use std::fmt::Write;

#[derive(Clone, Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations per bound (not cumulative); the `+Inf` bucket is `count`.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(index) = self.bounds.iter().position(|bound| value <= *bound) {
            self.buckets[index] += 1;
        }
        self.count += 1;
        self.sum += value;
    }

    /// The series lines of `name` with `labels` (the inside of `{...}`, maybe empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let mut h = Histogram::new(&[1.0, 10.0]);
        for v in [1.0, 5.0, 50.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "t", "a=\"b\"");
        assert_eq!(
            out,
            "t_bucket{a=\"b\",le=\"1\"} 1\nt_bucket{a=\"b\",le=\"10\"} 2\n\
             t_bucket{a=\"b\",le=\"+Inf\"} 3\nt_sum{a=\"b\"} 56\nt_count{a=\"b\"} 3\n"
        );
    }
}
