//! One TCP connection's accounting, as Istio's network stats filter keeps it: bytes received
//! from and sent to the downstream, "opened" counted once the connection's labels are known
//! (after the peer metadata exchange, or at close if it never happened), "closed" at the end,
//! and deltas handed out on every flush (each report interval and at close).
//!
//! It also decides whether the connection carries HTTP: Istio places NETWORK WasmPlugins on
//! HTTP filter chains too (before the HTTP connection manager), and native Istio never emits
//! `istio_tcp_*` there, so a connection whose first downstream bytes are an HTTP/1.x request
//! line or the HTTP/2 preface records nothing. This module is pure logic: the plugin glue reads
//! the host and computes the labels.

use crate::store::counters::CounterValues;

/// What the connection turned out to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traffic {
    /// No data seen yet.
    Undecided,
    /// Plain TCP (or TLS the proxy does not terminate): recorded.
    Tcp,
    /// HTTP on a network filter chain: not recorded (the HTTP filter records it).
    Http,
}

/// Bytes of the first downstream data needed to recognise HTTP.
pub(crate) const SNIFF_BYTES: usize = 16;

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";
const HTTP1_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Whether the first bytes a client sent start an HTTP/1.x request or the HTTP/2 preface.
pub(crate) fn looks_like_http(first_bytes: &[u8]) -> bool {
    let prefix = &first_bytes[..first_bytes.len().min(SNIFF_BYTES)];
    let starts = |pattern: &[u8]| {
        let n = prefix.len().min(pattern.len());
        n > 0 && prefix[..n] == pattern[..n] && (n == pattern.len() || n == prefix.len())
    };
    HTTP1_METHODS.iter().any(|m| prefix.starts_with(m)) || starts(HTTP2_PREFACE)
}

/// The counters of one connection not yet handed out.
#[derive(Debug, Clone)]
pub(crate) struct TcpFlow {
    traffic: Traffic,
    received: u64,
    sent: u64,
    opened_recorded: bool,
    closed: bool,
}

impl Default for TcpFlow {
    fn default() -> Self {
        TcpFlow {
            traffic: Traffic::Undecided,
            received: 0,
            sent: 0,
            opened_recorded: false,
            closed: false,
        }
    }
}

impl TcpFlow {
    pub(crate) fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// Whether the first downstream chunk still has to be looked at.
    pub(crate) fn wants_first_bytes(&self) -> bool {
        self.traffic == Traffic::Undecided
    }

    /// Data from the downstream (client to proxy). `first_bytes` is the start of the chunk when
    /// [`TcpFlow::wants_first_bytes`] was true.
    pub(crate) fn downstream_data(&mut self, len: usize, first_bytes: Option<&[u8]>) {
        if self.traffic == Traffic::Undecided {
            self.traffic = match first_bytes {
                Some(bytes) if looks_like_http(bytes) => Traffic::Http,
                _ if len == 0 => Traffic::Undecided,
                _ => Traffic::Tcp,
            };
        }
        self.received = self.received.saturating_add(len as u64);
    }

    /// Data from the upstream, sent on to the downstream. A server that speaks first (MySQL,
    /// SMTP) decides the connection is not HTTP.
    pub(crate) fn upstream_data(&mut self, len: usize) {
        if self.traffic == Traffic::Undecided && len > 0 {
            self.traffic = Traffic::Tcp;
        }
        self.sent = self.sent.saturating_add(len as u64);
    }

    /// Whether the connection is recorded at all.
    pub(crate) fn recorded(&self) -> bool {
        self.traffic != Traffic::Http
    }

    /// Whether a flush would hand out anything.
    #[cfg(test)]
    pub(crate) fn has_delta(&self) -> bool {
        self.recorded() && (!self.opened_recorded || self.received > 0 || self.sent > 0)
    }

    /// The deltas since the last flush: `[opened, closed, sent, received]`. With `closing`,
    /// also the close (once). `None` for HTTP connections and when there is nothing new.
    pub(crate) fn take_delta(&mut self, closing: bool) -> Option<CounterValues> {
        if !self.recorded() || self.closed {
            return None;
        }
        let delta = [
            u64::from(!self.opened_recorded),
            u64::from(closing),
            std::mem::take(&mut self.sent),
            std::mem::take(&mut self.received),
        ];
        self.opened_recorded = true;
        self.closed = closing;
        (delta != [0; 4]).then_some(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn recognises_http_request_lines_and_the_h2_preface() {
        assert!(looks_like_http(b"GET /productpage HTTP/1.1\r\n"));
        assert!(looks_like_http(b"POST /x HTTP/1.1"));
        assert!(looks_like_http(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(looks_like_http(b"PRI * HT"), "a split preface");
        assert!(
            !looks_like_http(b"\x16\x03\x01\x02\x00"),
            "TLS client hello"
        );
        assert!(
            !looks_like_http(b"\x00\x00\x00\x2a\x00\x00\x00\x00"),
            "binary protocol"
        );
        assert!(!looks_like_http(b"GETX"), "no method without its space");
        assert!(!looks_like_http(b"*1\r\n$4\r\nPING\r\n"), "redis");
        assert!(!looks_like_http(b""));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn hands_out_open_bytes_and_close_once() {
        let mut f = TcpFlow::default();
        f.downstream_data(100, Some(b"\x00\x01binary"));
        f.upstream_data(40);
        assert_eq!(f.take_delta(false), Some([1, 0, 40, 100]));
        assert_eq!(f.take_delta(false), None, "nothing new");
        f.downstream_data(5, None);
        assert_eq!(f.take_delta(true), Some([0, 1, 0, 5]));
        assert_eq!(f.take_delta(true), None, "closed once");
        f.downstream_data(5, None);
        assert_eq!(f.take_delta(false), None, "nothing after the close");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_connection_without_data_opens_and_closes_at_the_end() {
        let mut f = TcpFlow::default();
        assert!(f.has_delta());
        assert_eq!(f.take_delta(true), Some([1, 1, 0, 0]));
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn server_first_protocols_are_tcp_and_http_is_never_recorded() {
        let mut mysql = TcpFlow::default();
        mysql.upstream_data(78);
        assert_eq!(mysql.traffic(), Traffic::Tcp);
        mysql.downstream_data(30, Some(b"GET looks like http but late"));
        assert_eq!(mysql.traffic(), Traffic::Tcp, "decided by the first data");

        let mut http = TcpFlow::default();
        assert!(http.wants_first_bytes());
        http.downstream_data(300, Some(b"GET / HTTP/1.1\r\n"));
        http.upstream_data(1000);
        assert!(!http.has_delta());
        assert_eq!(http.take_delta(true), None);
    }
}
