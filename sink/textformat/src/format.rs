//! Which exposition format a body is declared in, from its HTTP Content-Type.
//!
//! Owns the Content-Type rule. It must not change how tolerant the parser is: both formats
//! are always accepted line by line; the declared format only decides timestamp units.

/// The declared format of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4` (also the fallback for a missing or unknown type).
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0` or `0.0.1`.
    OpenMetrics,
}

impl Format {
    /// The format a Content-Type header value declares. Anything but
    /// `application/openmetrics-text` (case-insensitive, parameters ignored) is text 0.0.4,
    /// as Prometheus falls back to it.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        let media_type = content_type
            .and_then(|value| value.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let om = Some("application/openmetrics-text; version=1.0.0; charset=utf-8");
        assert_eq!(Format::from_content_type(om), Format::OpenMetrics);
        let om_old = Some("Application/OpenMetrics-Text;version=0.0.1");
        assert_eq!(Format::from_content_type(om_old), Format::OpenMetrics);
        let text = Some("text/plain; version=0.0.4; charset=utf-8");
        assert_eq!(Format::from_content_type(text), Format::PrometheusText);
        assert_eq!(Format::from_content_type(None), Format::PrometheusText);
        assert_eq!(Format::from_content_type(Some("")), Format::PrometheusText);
    }
}
