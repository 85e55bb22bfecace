//! Ingest stage: the `POST /v1/reports` handler, its authentication and caller-identity check,
//! report decoding and the conversion of reports into samples.
//!
//! Owns everything between the HTTP request and the exporter queue. It must not talk to
//! remote-write endpoints itself.

pub mod accept;
pub mod auth;
mod config;
pub mod convert;
pub mod handler;
pub mod identity;
pub mod staleness;
mod xfcc;

pub use accept::Ingestor;
pub use config::IngestConfig;
pub use convert::{format_le, report_to_samples};
