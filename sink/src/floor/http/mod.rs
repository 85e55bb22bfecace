//! The client side of HTTP shared by every push and pull: an endpoint's connection settings
//! (URL, headers, basic or bearer auth, TLS), one client builder, one classification of an
//! answer, and one retry loop with backoff and `Retry-After`.
//!
//! Owns what every protocol does alike; each protocol (remote-write, Loki, scrape) keeps its
//! fixed headers and which statuses it retries, and passes them in.

pub mod client;
pub mod connection;
pub mod retry;

pub use client::{
    base64_encode, body_for_log, build_http_client, configured_headers, request_error_text,
    setup_error, with_tls, ClientError, TlsConfig, USER_AGENT,
};
pub use connection::{BasicAuth, Connection};
pub use retry::{parse_retry_after, Backoff, SendOutcome};
