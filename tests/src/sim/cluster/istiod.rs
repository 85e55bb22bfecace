//! A simulated istiod's `:15014/metrics`, shaped like the reference Istio 1.14 capture:
//! `pilot_xds` connected proxies, `pilot_xds_pushes{type}`, `pilot_total_xds_rejects{type}`,
//! `pilot_total_xds_internal_errors`, the push-time, convergence and config-size histograms,
//! push triggers, Kubernetes events, validation and injection counters, `istio_build`, and the
//! Go and process series.
//!
//! A seeded sequence of config changes (every few seconds of simulated time) drives the
//! values: each change pushes xDS to every connected proxy. It serves nothing itself.

use std::collections::BTreeMap;
use std::fmt::Write;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::histogram::Histogram;

const PUSH_TIME_BOUNDS: [f64; 9] = [0.01, 0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];
const CONVERGENCE_BOUNDS: [f64; 8] = [0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];
const CONFIG_SIZE_BOUNDS: [f64; 6] = [1.0, 1e4, 1e6, 4e6, 1e7, 4e7];
/// xDS types with the type URL of `pilot_xds_config_size_bytes`.
const XDS_TYPES: [(&str, &str); 4] = [
    ("cds", "type.googleapis.com/envoy.config.cluster.v3.Cluster"),
    (
        "eds",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    ),
    (
        "lds",
        "type.googleapis.com/envoy.config.listener.v3.Listener",
    ),
    (
        "rds",
        "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    ),
];

/// One kind of simulated config change: the Kubernetes event, the push trigger, and whether
/// it is a full push (every type) or endpoints only.
struct Change {
    registry: bool,
    kind: &'static str,
    trigger: &'static str,
    full_push: bool,
}

const CHANGES: [Change; 3] = [
    Change {
        registry: true,
        kind: "EndpointSlice",
        trigger: "endpoint",
        full_push: false,
    },
    Change {
        registry: false,
        kind: "VirtualService",
        trigger: "config",
        full_push: true,
    },
    Change {
        registry: true,
        kind: "Pods",
        trigger: "service",
        full_push: false,
    },
];

/// istiod's state, advanced by simulated time.
pub struct ControlPlane {
    rng: StdRng,
    version: String,
    started_s: f64,
    next_change_s: f64,
    changes: u64,
    proxies: u64,
    pushes: BTreeMap<&'static str, u64>,
    push_time: BTreeMap<&'static str, Histogram>,
    config_size: BTreeMap<&'static str, Histogram>,
    convergence: Histogram,
    rejects: BTreeMap<&'static str, u64>,
    triggers: BTreeMap<&'static str, u64>,
    /// `(registry?, kind, event)` → count.
    events: BTreeMap<(bool, &'static str, &'static str), u64>,
    validation_passed: u64,
    validation_failed: u64,
    injections: u64,
}

impl ControlPlane {
    /// istiod at `now_s` with `proxies` sidecars injected and connected: each got a full push.
    pub fn new(seed: u64, version: &str, proxies: u64, now_s: f64) -> ControlPlane {
        let mut plane = ControlPlane {
            rng: StdRng::seed_from_u64(seed ^ 0x15014),
            version: version.to_string(),
            started_s: now_s - 600.0,
            next_change_s: now_s + 2.0,
            changes: 0,
            proxies,
            pushes: BTreeMap::new(),
            push_time: BTreeMap::new(),
            config_size: BTreeMap::new(),
            convergence: Histogram::new(&CONVERGENCE_BOUNDS),
            rejects: BTreeMap::new(),
            triggers: BTreeMap::new(),
            events: BTreeMap::new(),
            validation_passed: 0,
            validation_failed: 0,
            injections: proxies,
        };
        *plane.events.entry((true, "Pods", "add")).or_default() += proxies;
        *plane.triggers.entry("proxy").or_default() += proxies;
        plane.push(true);
        plane
    }

    /// Applies every config change due by `now_s`; returns how many xDS responses each
    /// connected proxy got meanwhile.
    pub fn advance(&mut self, now_s: f64) -> u64 {
        let mut per_proxy = 0;
        while self.next_change_s <= now_s {
            let change = &CHANGES[(self.changes % CHANGES.len() as u64) as usize];
            self.changes += 1;
            let event = if change.registry { "update" } else { "add" };
            *self
                .events
                .entry((change.registry, change.kind, event))
                .or_default() += 1;
            *self.triggers.entry(change.trigger).or_default() += 1;
            if !change.registry {
                self.validation_passed += 1;
            }
            if self.changes.is_multiple_of(4) {
                // A config refused at admission, and a proxy rejecting a cluster update.
                self.validation_failed += 1;
                *self.rejects.entry("cds").or_default() += 1;
            }
            per_proxy += self.push(change.full_push);
            self.next_change_s += self.rng.random_range(3.0..8.0);
        }
        per_proxy
    }

    /// Pushes to every proxy; returns the responses each got.
    fn push(&mut self, full: bool) -> u64 {
        let types = if full {
            &XDS_TYPES[..]
        } else {
            &XDS_TYPES[1..2]
        };
        for _ in 0..self.proxies {
            for (short, url) in types {
                *self.pushes.entry(short).or_default() += 1;
                let took = self.rng.random_range(0.001..0.08);
                self.push_time
                    .entry(short)
                    .or_insert_with(|| Histogram::new(&PUSH_TIME_BOUNDS))
                    .observe(took);
                let size = self.rng.random_range(2_000.0..60_000.0);
                self.config_size
                    .entry(url)
                    .or_insert_with(|| Histogram::new(&CONFIG_SIZE_BOUNDS))
                    .observe(size);
            }
            let converged = self.rng.random_range(0.01..0.6);
            self.convergence.observe(converged);
        }
        types.len() as u64
    }

    /// The `/metrics` body at `now_s`.
    pub fn render(&self, now_s: f64) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_pilot(&mut out);
        self.render_process(&mut out, now_s);
        out
    }

    fn render_pilot(&self, out: &mut String) {
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            out,
            "galley_validation_failed",
            "counter",
            "Resource validation failed.",
        );
        let _ = writeln!(out, "galley_validation_failed{{group=\"networking.istio.io\",reason=\"invalid_resource\",resource=\"virtualservices\",version=\"v1beta1\"}} {}", self.validation_failed);
        family(
            out,
            "galley_validation_passed",
            "counter",
            "Resource is valid.",
        );
        let _ = writeln!(out, "galley_validation_passed{{group=\"networking.istio.io\",resource=\"virtualservices\",version=\"v1beta1\"}} {}", self.validation_passed);
        family(out, "istio_build", "gauge", "Istio component build info");
        let _ = writeln!(
            out,
            "istio_build{{component=\"pilot\",tag=\"{}\"}} 1",
            self.version
        );
        for (registry, name, help) in [
            (false, "pilot_k8s_cfg_events", "Events from k8s config."),
            (true, "pilot_k8s_reg_events", "Events from k8s registry."),
        ] {
            family(out, name, "counter", help);
            for ((_, kind, event), n) in self.events.iter().filter(|((r, ..), _)| *r == registry) {
                let _ = writeln!(out, "{name}{{event=\"{event}\",type=\"{kind}\"}} {n}");
            }
        }
        family(out, "pilot_proxy_convergence_time", "histogram", "Delay in seconds between config change and a proxy receiving all required configuration.");
        self.convergence
            .render(out, "pilot_proxy_convergence_time", "");
        family(
            out,
            "pilot_push_triggers",
            "counter",
            "Total number of times a push was triggered, labeled by reason for the push.",
        );
        for (trigger, n) in &self.triggers {
            let _ = writeln!(out, "pilot_push_triggers{{type=\"{trigger}\"}} {n}");
        }
        family(
            out,
            "pilot_total_xds_internal_errors",
            "counter",
            "Total number of internal XDS errors in pilot.",
        );
        let _ = writeln!(out, "pilot_total_xds_internal_errors 0");
        family(
            out,
            "pilot_total_xds_rejects",
            "counter",
            "Total number of XDS responses from pilot rejected by proxy.",
        );
        for (kind, n) in &self.rejects {
            let _ = writeln!(out, "pilot_total_xds_rejects{{type=\"{kind}\"}} {n}");
        }
        family(
            out,
            "pilot_xds",
            "gauge",
            "Number of endpoints connected to this pilot using XDS.",
        );
        let _ = writeln!(
            out,
            "pilot_xds{{version=\"{}\"}} {}",
            self.version, self.proxies
        );
        family(
            out,
            "pilot_xds_config_size_bytes",
            "histogram",
            "Distribution of configuration sizes pushed to clients",
        );
        for (url, histogram) in &self.config_size {
            histogram.render(
                out,
                "pilot_xds_config_size_bytes",
                &format!("type=\"{url}\""),
            );
        }
        family(
            out,
            "pilot_xds_push_time",
            "histogram",
            "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
        );
        for (kind, histogram) in &self.push_time {
            histogram.render(out, "pilot_xds_push_time", &format!("type=\"{kind}\""));
        }
        family(
            out,
            "pilot_xds_pushes",
            "counter",
            "Pilot build and send errors for lds, rds, cds and eds.",
        );
        for (kind, n) in &self.pushes {
            let _ = writeln!(out, "pilot_xds_pushes{{type=\"{kind}\"}} {n}");
        }
        family(
            out,
            "sidecar_injection_success_total",
            "counter",
            "Total number of successful sidecar injection requests.",
        );
        let _ = writeln!(out, "sidecar_injection_success_total {}", self.injections);
    }

    fn render_process(&self, out: &mut String, now_s: f64) {
        let up = (now_s - self.started_s).max(0.0);
        let pushes: u64 = self.pushes.values().sum();
        let heap = 30_000_000 + (pushes % 500) * 40_000;
        for (name, kind, value) in [
            (
                "go_goroutines",
                "gauge",
                format!("{}", 400 + self.proxies * 6),
            ),
            ("go_memstats_alloc_bytes", "gauge", heap.to_string()),
            (
                "go_memstats_alloc_bytes_total",
                "counter",
                format!("{}", 1_500_000_000 + pushes * 180_000),
            ),
            ("go_memstats_heap_alloc_bytes", "gauge", heap.to_string()),
            (
                "go_memstats_heap_inuse_bytes",
                "gauge",
                (heap + 7_000_000).to_string(),
            ),
            ("go_memstats_heap_sys_bytes", "gauge", "64389120".into()),
            (
                "go_memstats_mallocs_total",
                "counter",
                format!("{}", 22_000_000 + pushes * 2_100),
            ),
            ("go_memstats_stack_inuse_bytes", "gauge", "2719744".into()),
            (
                "process_cpu_seconds_total",
                "counter",
                format!("{:.2}", 80.0 + up * 0.05 + pushes as f64 * 0.004),
            ),
            ("process_max_fds", "gauge", "1048576".into()),
            (
                "process_open_fds",
                "gauge",
                format!("{}", 40 + self.proxies),
            ),
            (
                "process_resident_memory_bytes",
                "gauge",
                (heap + 60_000_000).to_string(),
            ),
            (
                "process_start_time_seconds",
                "gauge",
                format!("{:.2}", self.started_s),
            ),
            ("process_virtual_memory_bytes", "gauge", "803545088".into()),
        ] {
            let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {value}");
        }
    }
}
