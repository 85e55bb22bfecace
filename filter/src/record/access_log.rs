//! Filter-shipped access logs within one worker VM, as pure logic: which requests are kept
//! (`only_errors`, then sampling), the [`AccessLogRecord`] of a kept request built from the
//! values the glue reads, and the bounded per-VM buffer with its count of dropped records.
//!
//! A selected request that does not fit the buffer is counted, and the count travels with the
//! records the VM hands over. What happens to them across the proxy's VMs (the shared queue,
//! the leader's per-report bound, the proxy-wide drop count) is
//! [`crate::proxy::access_log`]'s. This module must not call the host: the glue
//! (`plugin::access_log`) reads the values named by [`HostValue`] and moves the records.

use meshtap_report::schema::Reporter;
use meshtap_report::AccessLogRecord;

use crate::config::AccessLogConfig;
use crate::record::flags::write_flags;
use crate::record::node::LocalNode;
use crate::record::peer::PeerInfo;

/// How a request ended, as the metrics path already read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestOutcome {
    /// `response.code`, `None` without a response.
    pub response_code: Option<i64>,
    /// `response.flags`.
    pub response_flags: u64,
    /// gRPC status, `None` for non-gRPC requests or when absent.
    pub grpc_status: Option<i64>,
}

impl RequestOutcome {
    /// What `only_errors` keeps: a response code of 400 or more, no response (code 0), any
    /// response flag, or a gRPC status other than OK.
    pub(crate) fn is_error(&self) -> bool {
        let code = self.response_code.unwrap_or(0);
        code >= 400
            || code == 0
            || self.response_flags != 0
            || self.grpc_status.is_some_and(|s| s != 0)
    }
}

/// A seeded pseudo-random source (SplitMix64): the same seed gives the same decisions.
#[derive(Debug, Clone)]
pub(crate) struct Sampler {
    state: u64,
}

impl Sampler {
    pub(crate) fn new(seed: u64) -> Sampler {
        Sampler { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Keeps with probability `rate`; rates of 0 and 1 draw nothing.
    pub(crate) fn keep(&mut self, rate: f64) -> bool {
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < rate
    }
}

/// One value the glue reads from the host for a kept record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HostValue {
    /// A property by its wire path (parts joined by NUL).
    Property(&'static [u8]),
    /// A request header (readable in the access-log phase).
    RequestHeader(&'static str),
    /// A response header.
    ResponseHeader(&'static str),
}

/// `%START_TIME%`: Envoy serves timestamps as int64 nanoseconds.
pub(crate) const START_TIME: HostValue = HostValue::Property(b"request\0time");
pub(crate) const METHOD: HostValue = HostValue::RequestHeader(":method");
pub(crate) const ORIGINAL_PATH: HostValue = HostValue::RequestHeader("x-envoy-original-path");
pub(crate) const PATH: HostValue = HostValue::RequestHeader(":path");
pub(crate) const PROTOCOL: HostValue = HostValue::Property(b"request\0protocol");
pub(crate) const CODE_DETAILS: HostValue = HostValue::Property(b"response\0code_details");
pub(crate) const TERMINATION_DETAILS: HostValue =
    HostValue::Property(b"connection\0termination_details");
pub(crate) const TRANSPORT_FAILURE: HostValue =
    HostValue::Property(b"upstream\0transport_failure_reason");
/// `%BYTES_RECEIVED%` / `%BYTES_SENT%`: body sizes.
pub(crate) const REQUEST_BODY_SIZE: HostValue = HostValue::Property(b"request\0size");
pub(crate) const RESPONSE_BODY_SIZE: HostValue = HostValue::Property(b"response\0size");
/// `%DURATION%`: Envoy serves durations as int64 nanoseconds.
pub(crate) const DURATION: HostValue = HostValue::Property(b"request\0duration");
pub(crate) const UPSTREAM_SERVICE_TIME: HostValue =
    HostValue::ResponseHeader("x-envoy-upstream-service-time");
pub(crate) const X_FORWARDED_FOR: HostValue = HostValue::RequestHeader("x-forwarded-for");
pub(crate) const USER_AGENT: HostValue = HostValue::RequestHeader("user-agent");
pub(crate) const REQUEST_ID: HostValue = HostValue::RequestHeader("x-request-id");
pub(crate) const AUTHORITY: HostValue = HostValue::RequestHeader(":authority");
pub(crate) const UPSTREAM_HOST: HostValue = HostValue::Property(b"upstream\0address");
pub(crate) const UPSTREAM_LOCAL_ADDRESS: HostValue =
    HostValue::Property(b"upstream\0local_address");
pub(crate) const DOWNSTREAM_LOCAL_ADDRESS: HostValue = HostValue::Property(b"destination\0address");
pub(crate) const DOWNSTREAM_REMOTE_ADDRESS: HostValue = HostValue::Property(b"source\0address");
pub(crate) const REQUESTED_SERVER_NAME: HostValue =
    HostValue::Property(b"connection\0requested_server_name");
pub(crate) const ROUTE_NAME: HostValue = HostValue::Property(b"xds\0route_name");

/// What the record of one request is built from besides the values read through [`HostValue`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordContext<'a> {
    pub reporter: Reporter,
    pub outcome: RequestOutcome,
    /// `xds.cluster_name` (`%UPSTREAM_CLUSTER_RAW%`), `""` without one.
    pub upstream_cluster: &'a str,
    pub local: &'a LocalNode,
    pub downstream_peer: Option<&'a PeerInfo>,
    pub upstream_peer: Option<&'a PeerInfo>,
    /// The host clock (ns since the epoch), read only when `request.time` is absent.
    pub now_ns: fn() -> i64,
}

fn text(bytes: Option<Vec<u8>>) -> String {
    match bytes {
        None => String::new(),
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
    }
}

fn int(bytes: Option<Vec<u8>>) -> Option<i64> {
    let array: [u8; 8] = bytes?.as_slice().try_into().ok()?;
    Some(i64::from_le_bytes(array))
}

/// The workload and namespace of a peer, `("", "")` when unknown (the sink then omits them).
fn workload_of(peer: Option<&PeerInfo>) -> (String, String) {
    peer.map_or_else(Default::default, |p| {
        (p.workload.clone(), p.namespace.clone())
    })
}

/// Builds the record of a kept request; `read` returns a host value's raw bytes, `None` when
/// absent (printed as `-` by the sink).
pub(crate) fn build_record(
    ctx: &RecordContext<'_>,
    mut read: impl FnMut(HostValue) -> Option<Vec<u8>>,
) -> AccessLogRecord {
    let duration_ns = int(read(DURATION));
    let start_time_ns =
        int(read(START_TIME)).unwrap_or_else(|| (ctx.now_ns)() - duration_ns.unwrap_or(0));
    let path = read(ORIGINAL_PATH).or_else(|| read(PATH));
    let mut response_flags = String::new();
    if ctx.outcome.response_flags != 0 {
        write_flags(&mut response_flags, ctx.outcome.response_flags);
    }
    let local = (ctx.local.workload.clone(), ctx.local.namespace.clone());
    let ((source_workload, source_namespace), (destination_workload, destination_namespace)) =
        match ctx.reporter {
            Reporter::Source => (local, workload_of(ctx.upstream_peer)),
            Reporter::Destination => (workload_of(ctx.downstream_peer), local),
            Reporter::Waypoint => (
                workload_of(ctx.downstream_peer),
                workload_of(ctx.upstream_peer),
            ),
        };
    let size = |bytes| int(bytes).map_or(0, |n| n.max(0) as u64);
    AccessLogRecord {
        start_time_ns,
        method: text(read(METHOD)),
        path: text(path),
        protocol: text(read(PROTOCOL)),
        response_code: ctx
            .outcome
            .response_code
            .map_or(0, |c| u32::try_from(c).unwrap_or(0)),
        response_flags,
        response_code_details: text(read(CODE_DETAILS)),
        connection_termination_details: text(read(TERMINATION_DETAILS)),
        upstream_transport_failure_reason: text(read(TRANSPORT_FAILURE)),
        bytes_received: size(read(REQUEST_BODY_SIZE)),
        bytes_sent: size(read(RESPONSE_BODY_SIZE)),
        duration_ms: duration_ns.map(|ns| ns.max(0) as u64 / 1_000_000),
        upstream_service_time: text(read(UPSTREAM_SERVICE_TIME)),
        x_forwarded_for: text(read(X_FORWARDED_FOR)),
        user_agent: text(read(USER_AGENT)),
        request_id: text(read(REQUEST_ID)),
        authority: text(read(AUTHORITY)),
        upstream_host: text(read(UPSTREAM_HOST)),
        upstream_cluster: ctx.upstream_cluster.to_owned(),
        upstream_local_address: text(read(UPSTREAM_LOCAL_ADDRESS)),
        downstream_local_address: text(read(DOWNSTREAM_LOCAL_ADDRESS)),
        downstream_remote_address: text(read(DOWNSTREAM_REMOTE_ADDRESS)),
        requested_server_name: text(read(REQUESTED_SERVER_NAME)),
        route_name: text(read(ROUTE_NAME)),
        source_workload,
        source_namespace,
        destination_workload,
        destination_namespace,
        reporter: ctx.reporter.as_str().to_owned(),
    }
}

/// One worker VM's access-log state: the selection and the buffer until the next tick.
#[derive(Debug, Clone)]
pub(crate) struct VmAccessLog {
    pub config: AccessLogConfig,
    sampler: Sampler,
    records: Vec<AccessLogRecord>,
    dropped: u64,
}

impl VmAccessLog {
    pub(crate) fn new(config: AccessLogConfig, seed: u64) -> VmAccessLog {
        VmAccessLog {
            config,
            sampler: Sampler::new(seed),
            records: Vec::new(),
            dropped: 0,
        }
    }

    /// Whether a request with this outcome gets a record: `only_errors` first, then sampling,
    /// then the buffer bound (a selected request that does not fit is counted as dropped).
    pub(crate) fn admit(&mut self, outcome: &RequestOutcome) -> bool {
        if self.config.only_errors && !outcome.is_error() {
            return false;
        }
        if !self.sampler.keep(self.config.sample_rate) {
            return false;
        }
        if self.records.len() >= self.config.max_per_interval as usize {
            self.dropped += 1;
            return false;
        }
        true
    }

    /// Buffers the record of an admitted request.
    pub(crate) fn push(&mut self, record: AccessLogRecord) {
        self.records.push(record);
    }

    /// Counts records lost outside the buffer (e.g. a batch the host refused to enqueue).
    pub(crate) fn count_dropped(&mut self, n: u64) {
        self.dropped += n;
    }

    /// Takes what is buffered: the records and the count dropped since the last hand-over;
    /// `None` when there is nothing to hand over.
    pub(crate) fn take_batch(&mut self) -> Option<(Vec<AccessLogRecord>, u64)> {
        if self.records.is_empty() && self.dropped == 0 {
            return None;
        }
        Some((
            std::mem::take(&mut self.records),
            std::mem::take(&mut self.dropped),
        ))
    }
}

#[cfg(test)]
mod tests;
