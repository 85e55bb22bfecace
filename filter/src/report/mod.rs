//! The report a leader VM posts to the sink: [`build`] maps the proxy-wide totals to Istio's
//! metric families. It must not gather the totals (that is [`crate::proxy`]) nor send anything
//! (the glue does).

mod build;

pub use build::{build, ReportContext};
