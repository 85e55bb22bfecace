//! The report a leader VM posts to the sink: [`build`] maps the proxy-wide totals to Istio's
//! metric families, `encode` turns the report and the access logs it carries into the body.
//! It must not gather the totals (that is [`crate::proxy`]) nor send anything (the glue does).

mod build;
mod encode;

pub use build::{build, ReportContext};
pub(crate) use encode::{encode, ReportAccessLogs};
