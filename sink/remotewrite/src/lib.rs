//! meshtap-remotewrite: the sink's sample model and the bytes of a Prometheus remote-write 1.0
//! request, as a pure crate (no tokio, no I/O) so the encoder can be benchmarked and fuzzed on
//! its own, beside `meshtap-textformat` (what scrapes read) and `meshtap-logformat` (what Loki
//! receives).
//!
//! [`series`] is the sample model every sink stage shares (a series id with its sorted labels,
//! stale markers); [`sample`] is what a remote-write lane queues (a reported series or an
//! already-encoded scraped one, [`encoded_series`]); [`encoder`] writes a batch of them as a
//! snappy-compressed `WriteRequest` ([`scraped_record`], [`external_labels`], [`request_body`],
//! [`snappy_body`] and [`snappy_elements`] are its parts; [`long_copies`] is the spool's shorter
//! form of a body and its expansion); [`proto`] declares the messages with prost and is the
//! reference the encoder is tested against. Queues, retries and HTTP stay in the sink.

pub mod encoded_series;
pub mod encoder;
pub mod external_labels;
pub mod long_copies;
pub mod proto;
pub mod request_body;
pub mod sample;
pub mod scraped_record;
pub mod series;
pub mod snappy_body;
pub mod snappy_elements;
