//! Extra dimensions of the request families, configured as `overrides[].tags` (Istio's Telemetry
//! API `tagOverrides` with `operation: UPSERT`): a label name and a value expression from a small,
//! fixed set — a request or response header, a string property of the stream, a node metadata
//! key or a quoted literal.
//!
//! Owns the expression grammar, the label layout of each request family (an UPSERT of one of the
//! 25 labels replaces its value, a new name is appended after them in config order), the extra
//! value columns the aggregator stores after the 25 labels (one per distinct name and
//! expression), and how a raw host value becomes a label value. It must not read the host: the
//! glue (`plugin/dimensions.rs`) evaluates the sources.

use meshtap_report::schema::{
    HTTP_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION, RESPONSE_BYTES,
};

use crate::record::labels::LABEL_COUNT;

/// Most extra value columns (distinct name and expression pairs) a configuration may have.
pub(crate) const MAX_EXTRA_DIMENSIONS: usize = 8;

/// Longest label value taken from a header or property, in bytes (longer ones are cut at a
/// UTF-8 boundary).
pub(crate) const MAX_VALUE_BYTES: usize = 256;

/// The value of a header or property that is absent (Istio's default for a missing value).
pub(crate) const MISSING_VALUE: &str = "unknown";

/// The families extra dimensions apply to (`ALL` means these four).
pub(crate) const REQUEST_FAMILIES: [&str; 4] = [
    REQUESTS_TOTAL,
    REQUEST_DURATION,
    REQUEST_BYTES,
    RESPONSE_BYTES,
];

/// String properties an expression may name, with their wire paths (parts joined by NUL).
const PROPERTIES: [(&str, &[u8]); 17] = [
    ("request.host", b"request\0host"),
    ("request.path", b"request\0path"),
    ("request.url_path", b"request\0url_path"),
    ("request.method", b"request\0method"),
    ("request.scheme", b"request\0scheme"),
    ("request.protocol", b"request\0protocol"),
    ("request.referer", b"request\0referer"),
    ("request.useragent", b"request\0useragent"),
    ("response.code_details", b"response\0code_details"),
    ("source.address", b"source\0address"),
    ("destination.address", b"destination\0address"),
    ("upstream.address", b"upstream\0address"),
    ("upstream.local_address", b"upstream\0local_address"),
    (
        "connection.requested_server_name",
        b"connection\0requested_server_name",
    ),
    ("connection.tls_version", b"connection\0tls_version"),
    ("xds.cluster_name", b"xds\0cluster_name"),
    ("xds.route_name", b"xds\0route_name"),
];

/// Where a dimension's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A request header (name lower-cased); one host call per request.
    RequestHeader(String),
    /// A response header (name lower-cased); one host call per request.
    ResponseHeader(String),
    /// A string property, as its wire path; one host call per request.
    Property(&'static [u8]),
    /// A key of the proxy's node metadata, read once when the plugin is configured.
    NodeMetadata(String),
    /// A fixed value.
    Literal(String),
}

/// One extra value column: the label name it was configured under and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    pub source: Source,
}

/// The extra dimensions of a configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dimensions {
    /// Extra value columns; column `k` is value `25 + k` of a stored label set.
    pub(crate) columns: Vec<Column>,
    /// Request families whose labels differ from the standard 25: (label name, position in
    /// the stored label set) in report order.
    layouts: Vec<(&'static str, Vec<(String, usize)>)>,
}

impl Dimensions {
    pub(crate) fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Sets label `name` of `family` to the value of `expression` (UPSERT). `Err` says why the
    /// name or expression is refused.
    pub(crate) fn upsert(
        &mut self,
        family: &'static str,
        name: &str,
        expression: &str,
    ) -> Result<(), String> {
        check_label_name(name)?;
        let source = parse_expression(expression)?;
        let column = match self
            .columns
            .iter()
            .position(|c| c.name == name && c.source == source)
        {
            Some(k) => k,
            None if self.columns.len() == MAX_EXTRA_DIMENSIONS => {
                return Err(format!(
                    "at most {MAX_EXTRA_DIMENSIONS} distinct extra dimensions (name and expression) are allowed"
                ))
            }
            None => {
                self.columns.push(Column {
                    name: name.to_string(),
                    source,
                });
                self.columns.len() - 1
            }
        };
        let at = match self.layouts.iter().position(|(f, _)| *f == family) {
            Some(at) => at,
            None => {
                let standard = HTTP_LABELS
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.to_string(), i))
                    .collect();
                self.layouts.push((family, standard));
                self.layouts.len() - 1
            }
        };
        let labels = &mut self.layouts[at].1;
        let position = LABEL_COUNT + column;
        match labels.iter_mut().find(|(l, _)| l == name) {
            Some(label) => label.1 = position,
            None => labels.push((name.to_string(), position)),
        }
        Ok(())
    }

    /// The labels of a request family as (name, position in the stored label set), in report
    /// order: its configured layout, else the standard 25 (so the extra values are left out).
    pub(crate) fn layout(&self, family: &str) -> Vec<(String, usize)> {
        match self.layouts.iter().find(|(f, _)| *f == family) {
            Some((_, labels)) => labels.clone(),
            None => HTTP_LABELS
                .iter()
                .enumerate()
                .map(|(i, l)| (l.to_string(), i))
                .collect(),
        }
    }

    /// Positions in the stored label set of the extra columns configured under `name`.
    pub(crate) fn positions_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = usize> + 'a {
        self.columns
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.name == name)
            .map(|(k, _)| LABEL_COUNT + k)
    }

    /// Replaces every node-metadata source by its value, read through `get` (`unknown` when the
    /// key is absent), so a request reads nothing for it.
    pub(crate) fn resolve_node_metadata(&mut self, get: impl Fn(&str) -> Option<String>) {
        for column in &mut self.columns {
            if let Source::NodeMetadata(key) = &column.source {
                let value = get(key).map_or_else(|| MISSING_VALUE.to_string(), |v| truncated(&v));
                column.source = Source::Literal(value);
            }
        }
    }
}

/// A Prometheus label name that a family can carry: `[a-zA-Z_][a-zA-Z0-9_]*`, not `__…`
/// (reserved) and not `le` (the histograms' bucket label).
fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
        && name != "le";
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a usable label name ([a-zA-Z_][a-zA-Z0-9_]*, not __… nor le)"
        ))
    }
}

/// Parses a value expression (see the module doc and `filter/README.md`).
pub(crate) fn parse_expression(expression: &str) -> Result<Source, String> {
    let e = expression.trim();
    if let Some(text) = quoted(e) {
        return Ok(Source::Literal(text.to_string()));
    }
    let indexed = [
        ("request.headers[", 0),
        ("response.headers[", 1),
        ("node.metadata[", 2),
    ];
    for (prefix, kind) in indexed {
        let Some(rest) = e.strip_prefix(prefix) else {
            continue;
        };
        let key = rest
            .strip_suffix(']')
            .and_then(quoted)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| format!("{expression:?}: write {prefix}'name']"))?;
        return match kind {
            0 | 1 => {
                let name = header_name(key)
                    .ok_or_else(|| format!("{expression:?}: {key:?} is not a header name"))?;
                Ok(if kind == 0 {
                    Source::RequestHeader(name)
                } else {
                    Source::ResponseHeader(name)
                })
            }
            _ => Ok(Source::NodeMetadata(key.to_string())),
        };
    }
    if let Some((_, path)) = PROPERTIES.iter().find(|(name, _)| *name == e) {
        return Ok(Source::Property(path));
    }
    let names: Vec<&str> = PROPERTIES.iter().map(|(name, _)| *name).collect();
    Err(format!(
        "{expression:?} is not a supported expression: request.headers['name'], response.headers['name'], node.metadata['KEY'], a quoted 'literal', or one of {}",
        names.join(", ")
    ))
}

/// The text between matching single or double quotes (no quote inside).
fn quoted(s: &str) -> Option<&str> {
    ['\'', '"'].into_iter().find_map(|q| {
        let inner = s.strip_prefix(q)?.strip_suffix(q)?;
        (!inner.contains(q)).then_some(inner)
    })
}

/// A header name as Envoy stores it (lower case); pseudo-headers such as `:authority` allowed.
fn header_name(key: &str) -> Option<String> {
    let body = key.strip_prefix(':').unwrap_or(key);
    let valid = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    valid.then(|| key.to_ascii_lowercase())
}

/// A label value from a header or property: `unknown` when absent, else its text (lossy UTF-8)
/// cut to [`MAX_VALUE_BYTES`].
pub(crate) fn value_of(raw: Option<&[u8]>) -> String {
    match raw {
        None => MISSING_VALUE.to_string(),
        Some(bytes) => truncated(&String::from_utf8_lossy(bytes)),
    }
}

fn truncated(text: &str) -> String {
    if text.len() <= MAX_VALUE_BYTES {
        return text.to_string();
    }
    let mut end = MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Appends one raw value to the key that identifies a request's extra values (absent and
/// empty differ; length-prefixed, so values cannot run into each other).
pub(crate) fn append_key(key: &mut Vec<u8>, raw: Option<&[u8]>) {
    match raw {
        None => key.push(0),
        Some(bytes) => {
            key.push(1);
            key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            key.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests;
