//! The trend lines: every `view.trend_step` a point per service (rate, error share,
//! quantiles) and istiod's push rate, the newest `view.trend_points` kept.
//!
//! Owns the ring of points and its bound. It must not compute the values (that is
//! [`super::live`]).

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::live::ServiceSummary;

/// A service's values at one point.
#[derive(Clone, Copy, Debug)]
struct Point {
    rate: f64,
    error_rate: Option<f64>,
    p50_ms: Option<f64>,
    p90_ms: Option<f64>,
    p99_ms: Option<f64>,
}

#[derive(Debug)]
struct Frame {
    services: HashMap<String, Point>,
    pushes_rate: Option<f64>,
}

/// A service's trend lines, oldest point first (`None` where it had no value).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ServiceTrend {
    pub rate: Vec<Option<f64>>,
    pub error_rate: Vec<Option<f64>>,
    pub p50_ms: Vec<Option<f64>>,
    pub p90_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
}

/// The newest frames.
#[derive(Debug)]
pub struct Trends {
    max_points: usize,
    frames: VecDeque<Frame>,
}

impl Trends {
    pub fn new(max_points: usize) -> Trends {
        Trends {
            max_points,
            frames: VecDeque::with_capacity(max_points),
        }
    }

    /// Adds a point for every service (already capped) and the push rate.
    pub fn add(&mut self, services: &[ServiceSummary], pushes_rate: Option<f64>) {
        if self.frames.len() == self.max_points {
            self.frames.pop_front();
        }
        let services = services
            .iter()
            .map(|s| {
                let point = Point {
                    rate: s.request_rate,
                    error_rate: s.error_rate,
                    p50_ms: s.p50_ms,
                    p90_ms: s.p90_ms,
                    p99_ms: s.p99_ms,
                };
                (s.service.clone(), point)
            })
            .collect();
        self.frames.push_back(Frame {
            services,
            pushes_rate,
        });
    }

    /// The trend lines of `service`.
    pub fn service(&self, service: &str) -> ServiceTrend {
        let mut trend = ServiceTrend::default();
        for frame in &self.frames {
            let point = frame.services.get(service);
            trend.rate.push(point.map(|p| p.rate));
            trend.error_rate.push(point.and_then(|p| p.error_rate));
            trend.p50_ms.push(point.and_then(|p| p.p50_ms));
            trend.p90_ms.push(point.and_then(|p| p.p90_ms));
            trend.p99_ms.push(point.and_then(|p| p.p99_ms));
        }
        trend
    }

    /// istiod's push rate per point.
    pub fn pushes(&self) -> Vec<Option<f64>> {
        self.frames.iter().map(|f| f.pushes_rate).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_points() {
        let row = |rate| ServiceSummary {
            service: "a".into(),
            reporter: "destination".into(),
            request_rate: rate,
            error_rate: None,
            p50_ms: Some(1.0),
            p90_ms: None,
            p99_ms: None,
            requests_total: 0.0,
            pods: 1,
        };
        let mut trends = Trends::new(2);
        trends.add(&[row(1.0)], None);
        trends.add(&[], Some(3.0));
        trends.add(&[row(2.0)], Some(4.0));
        assert_eq!(trends.service("a").rate, [None, Some(2.0)]);
        assert_eq!(trends.service("a").p50_ms, [None, Some(1.0)]);
        assert_eq!(trends.pushes(), [Some(3.0), Some(4.0)]);
    }
}
