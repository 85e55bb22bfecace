//! `http://` and `https://` URLs in config values, checked at load and shown without their
//! user info.
//!
//! Owns the parsing rules (scheme, host, port, no whitespace) and the redacted form. A URL may
//! carry credentials (`http://user:password@host/`), so everything that shows one — `Display`,
//! `Debug`, `Serialize` — shows the redacted form; only [`HttpUrl::as_str`] gives the URL to
//! send to. It must not decide which keys hold URLs or what a section does with them.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use super::REDACTED;

/// A checked `http(s)://` URL whose user info never reaches a log, a label or a file name.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// As written in the config, user info included.
    text: String,
    /// `text` with any user info replaced by [`REDACTED`]; equal to `text` when there is none.
    redacted: String,
    has_user_info: bool,
}

impl HttpUrl {
    /// Checks `text`; the error says what is wrong and shows the URL redacted.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let shown = redact_user_info(text);
        let lower = text.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(format!("must be an http:// or https:// URL, got {shown:?}"));
        }
        let parsed = problem(text).map_err(|what| format!("{what} in {shown:?}"))?;
        Ok(HttpUrl {
            has_user_info: !parsed.username().is_empty() || parsed.password().is_some(),
            text: text.to_owned(),
            redacted: shown,
        })
    }

    /// The URL to send to, user info included: for the HTTP client and for hashing only,
    /// never for anything shown.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL with its user info (if any) replaced by `<redacted>`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Whether the URL carries `user[:password]@`.
    pub fn has_user_info(&self) -> bool {
        self.has_user_info
    }
}

/// Parses an `http(s)://` URL; the error names what is wrong (without showing the URL).
fn problem(text: &str) -> Result<reqwest::Url, String> {
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "URL contains {c:?} (encode it as %{:02X})",
            c as u32
        ));
    }
    if text.contains('\\') {
        return Err("URL contains '\\'".to_owned());
    }
    let parsed = reqwest::Url::parse(text).map_err(not_a_url)?;
    let authority = &text[text.find("://").map_or(0, |i| i + 3)..];
    if authority.starts_with(['/', '?', '#']) || parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host".to_owned());
    }
    if parsed.port() == Some(0) {
        return Err("port 0 (a port is 1 to 65535)".to_owned());
    }
    Ok(parsed)
}

/// What is wrong with `host[:port]` as the authority of an `http://` URL, if anything.
pub fn host_port_problem(host_port: &str) -> Option<String> {
    problem(&format!("http://{host_port}/")).err()
}

/// What a URL parse error means, in words that name the part at fault.
fn not_a_url(e: url::ParseError) -> String {
    use url::ParseError as E;
    match e {
        E::InvalidPort => "invalid port (a port is 1 to 65535)".to_owned(),
        E::EmptyHost => "no host".to_owned(),
        E::InvalidIpv6Address => "invalid IPv6 address".to_owned(),
        E::InvalidIpv4Address => "invalid IPv4 address".to_owned(),
        E::InvalidDomainCharacter | E::IdnaError => "invalid character in the host".to_owned(),
        other => format!("not a URL ({other})"),
    }
}

/// `text` with the user info of its authority (up to the last `@` before the path, query or
/// fragment) replaced by [`REDACTED`]; works on malformed URLs too, so errors can show them.
fn redact_user_info(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_owned();
    };
    let start = scheme_end + 3;
    let authority_len = text[start..]
        .find(['/', '?', '#', '\\'])
        .unwrap_or(text.len() - start);
    match text[start..start + authority_len].rfind('@') {
        Some(at) => format!("{}{REDACTED}{}", &text[..start], &text[start + at..]),
        None => text.to_owned(),
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted, f)
    }
}

/// Serialized redacted: a config is serialized only to be shown.
impl Serialize for HttpUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HttpUrl::parse(&text).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_redacted_and_kept_for_sending() {
        let url = HttpUrl::parse("https://me:s3cret@mimir:9009/api/v1/push?x=a@b").unwrap();
        assert_eq!(
            url.as_str(),
            "https://me:s3cret@mimir:9009/api/v1/push?x=a@b"
        );
        assert_eq!(
            url.redacted(),
            "https://<redacted>@mimir:9009/api/v1/push?x=a@b"
        );
        assert_eq!(url.to_string(), url.redacted());
        assert_eq!(
            format!("{url:?}"),
            "\"https://<redacted>@mimir:9009/api/v1/push?x=a@b\""
        );
        assert!(url.has_user_info());
        let plain = HttpUrl::parse("http://[::1]:80/x").unwrap();
        assert_eq!(plain.redacted(), plain.as_str());
        assert!(!plain.has_user_info());
        assert_eq!(
            redact_user_info("http://tok3n@exa mple:99999/"),
            "http://<redacted>@exa mple:99999/"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (text, message) in [
            (
                "http://exa mple:99999/",
                "URL contains ' ' (encode it as %20) in \"http://exa mple:99999/\"",
            ),
            (
                "http://127.0.0.1:99999/x",
                "invalid port (a port is 1 to 65535) in \"http://127.0.0.1:99999/x\"",
            ),
            ("http://", "no host in \"http://\""),
            ("https://[::1", "invalid IPv6 address in \"https://[::1\""),
            ("http:///x", "no host in \"http:///x\""),
            (
                "http://h:0/",
                "port 0 (a port is 1 to 65535) in \"http://h:0/\"",
            ),
            (
                "ftp://u:pw@h/",
                "must be an http:// or https:// URL, got \"ftp://<redacted>@h/\"",
            ),
            (
                "mimir:9009",
                "must be an http:// or https:// URL, got \"mimir:9009\"",
            ),
        ] {
            assert_eq!(HttpUrl::parse(text).unwrap_err(), message, "{text}");
        }
    }
}
