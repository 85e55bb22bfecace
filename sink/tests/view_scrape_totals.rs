//! The live view's numbers from scraped samples, end to end through the scrape conversion:
//! two targets scraped three times (one answering a new code in the last scrape), several
//! services, reporters, codes and duration histograms, a NaN and unrelated families; every
//! rate, error share, total and quantile is checked against figures worked out from the
//! bodies by hand.

use std::sync::Arc;

use meshtap_sink::ops::metrics::SinkMetrics;
use meshtap_sink::scrape::config::ScrapeConfig;
use meshtap_sink::scrape::convert::body_to_samples;
use meshtap_sink::scrape::series_cache::SeriesCache;
use meshtap_sink::scrape::target::{static_targets, Target};
use meshtap_sink::view::{histogram_quantile, LiveView, LogFilter, ViewConfig, ViewTap};

const SERVICES: [(&str, u64); 2] = [("reviews", 1), ("ratings", 2)];

fn target(address: &str) -> Target {
    let section: ScrapeConfig = serde_yaml::from_str(&format!(
        "jobs: [{{name: mesh, static_configs: [{{targets: ['{address}']}}]}}]"
    ))
    .unwrap();
    static_targets(&section, &section.jobs[0]).remove(0)
}

/// One series of `family` (with `extra` labels after the request labels) and its value.
fn line(
    family: &str,
    service: &str,
    reporter: &str,
    code: &str,
    extra: &str,
    value: u64,
) -> String {
    format!(
        "{family}{{destination_service=\"{service}.shop.svc.cluster.local\",reporter=\"{reporter}\",response_code=\"{code}\",source_workload=\"productpage-v1\",source_workload_namespace=\"shop\"{extra}}} {value}\n"
    )
}

/// Scrape `round` of a target: per service (growth `k`) 10k OKs and k 503s per round seen by
/// the server, 100k per round by the client; the server's histograms put OKs in the buckets
/// 10 / 100 / +Inf as 5k / 3k / 2k per round and 503s all in 100. `with_500` adds 3 answers
/// 500 to `reviews`' server side.
fn body(round: u64, with_500: bool) -> String {
    let (mut requests, mut durations) = (String::new(), String::new());
    for (service, k) in SERVICES {
        let n = round * k;
        requests += &line(
            "istio_requests_total",
            service,
            "destination",
            "200",
            "",
            10 * n,
        );
        requests += &line("istio_requests_total", service, "destination", "503", "", n);
        requests += &line(
            "istio_requests_total",
            service,
            "source",
            "200",
            "",
            100 * n,
        );
        let bucket = "istio_request_duration_milliseconds_bucket";
        for (le, ok, failed) in [("10", 5, 0), ("100", 8, 1), ("+Inf", 10, 1)] {
            let le = format!(",le=\"{le}\"");
            durations += &line(bucket, service, "destination", "200", &le, ok * n);
            durations += &line(bucket, service, "destination", "503", &le, failed * n);
        }
        durations += &line(
            "istio_request_duration_milliseconds_count",
            service,
            "destination",
            "200",
            "",
            10 * n,
        );
    }
    if with_500 {
        requests += &line(
            "istio_requests_total",
            "reviews",
            "destination",
            "500",
            "",
            3,
        );
    }
    requests += &line(
        "istio_requests_total",
        "reviews",
        "destination",
        "502",
        "",
        0,
    )
    .replace(" 0\n", " NaN\n");
    format!(
        "# TYPE istio_requests_total counter\n{requests}\
         # TYPE istio_request_duration_milliseconds histogram\n{durations}\
         envoy_server_uptime {round}\n"
    )
}

/// Rates are sums of per-source quotients, added in no set order.
fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-12, "{got} != {want}");
}

#[test]
fn scraped_rates_errors_totals_and_quantiles_per_service() {
    let view = Arc::new(LiveView::new(
        &ViewConfig::default(),
        Arc::new(SinkMetrics::default()),
    ));
    let tap = ViewTap::new(view.clone());
    let targets = [target("10.0.0.1:15020"), target("10.0.0.2:15020")];
    let mut caches = [SeriesCache::default(), SeriesCache::default()];
    for round in 0..3 {
        let scrape_ms = 1_700_000_000_000 + round as i64 * 10_000;
        for (i, (target, cache)) in targets.iter().zip(&mut caches).enumerate() {
            let body = body(round, i == 1 && round == 2);
            let samples =
                body_to_samples(body.as_bytes(), None, target, scrape_ms, false, cache).samples;
            cache.finish(scrape_ms);
            tap.scraped(&target.url, scrape_ms, &samples);
        }
    }
    // Over 20 s per target: reviews 2 × 11 answers (2 × 1 a 503), ratings twice that; the
    // second target's reviews also 3 answers 500 (new in the last scrape, so all of them
    // count). The server side is shown, the client's 100k per round is not added.
    let summary = view.summary();
    let rows: Vec<_> = summary
        .services
        .iter()
        .map(|s| s.service.as_str())
        .collect();
    assert_eq!(
        rows,
        [
            "ratings.shop.svc.cluster.local",
            "reviews.shop.svc.cluster.local"
        ]
    );
    let reviews = &summary.services[1];
    assert_eq!(reviews.reporter, "destination");
    assert_close(reviews.request_rate, 22.0 / 20.0 + 25.0 / 20.0);
    assert_eq!(reviews.error_rate, Some((2.0 + 5.0) / 47.0));
    assert_eq!(reviews.requests_total, 47.0);
    assert_eq!(reviews.pods, 2);
    let ratings = &summary.services[0];
    assert_close(ratings.request_rate, 2.0 * 44.0 / 20.0);
    assert_eq!(ratings.error_rate, Some(8.0 / 88.0));
    assert_eq!(ratings.requests_total, 88.0);
    // Per target and k: bucket 10 gets 10k, 100 gets 6k + 2k, +Inf 4k over the window.
    for (row, k) in [(reviews, 1.0), (ratings, 2.0)] {
        let buckets = [
            (10.0, 20.0 * k),
            (100.0, 16.0 * k),
            (f64::INFINITY, 8.0 * k),
        ];
        assert_eq!(
            row.p50_ms,
            histogram_quantile(0.5, &buckets),
            "{}",
            row.service
        );
        assert_eq!(
            row.p90_ms,
            histogram_quantile(0.9, &buckets),
            "{}",
            row.service
        );
        assert_eq!(
            row.p99_ms,
            histogram_quantile(0.99, &buckets),
            "{}",
            row.service
        );
        assert!(row.p50_ms.is_some());
    }
    let live = view.live(&LogFilter::default());
    let edges: Vec<_> = (live.edges.iter())
        .map(|e| {
            (
                e.source.as_str(),
                e.destination.as_str(),
                e.reporter.as_str(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            (
                "productpage-v1.shop",
                "ratings.shop.svc.cluster.local",
                "destination"
            ),
            (
                "productpage-v1.shop",
                "reviews.shop.svc.cluster.local",
                "destination"
            ),
        ]
    );
    assert_close(live.edges[0].request_rate, 4.4);
    assert_close(live.edges[1].request_rate, 2.35);
    assert_eq!(live.edges[1].error_rate, Some(7.0 / 47.0));
    assert_eq!(live.services.len(), 2);
}
