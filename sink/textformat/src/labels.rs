//! Label sets of a sample: a borrowed slice of the line that is lexed again on iteration, with
//! values unescaped only when asked (zero allocation for the usual escape-free values).
//!
//! Owns the grammar inside `{...}` in both readings:
//! - [`LabelStyle::Escaped`], the format's rule: a value ends at the first `"` not preceded by
//!   a backslash escape; `\\`, `\"` and `\n` are unescaped on demand.
//! - [`LabelStyle::EnvoyRaw`], for Envoy, which writes tag values without escaping: a value
//!   has no escapes, and ends at the first `"` that is followed by `}`, or by `,` and then
//!   either `}` or a label name and `="`. This reading is only tried when the escaped one
//!   fails for the line, so well-formed lines never change meaning. It scans each byte a
//!   bounded number of times (no backtracking), so it cannot loop or blow up.
//!
//! It must not parse anything outside the braces (names, values, timestamps).

use std::borrow::Cow;

use memchr::memchr;

use crate::lex::{label_name_end, quoted_name, skip_blanks};
use crate::skip::SkipReason;

/// How the text of an [`EscapedStr`] is escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escaping {
    /// The raw text is the value.
    Literal,
    /// Label value: `\\`, `\"` and `\n` are escapes.
    LabelValue,
    /// Text-format HELP: `\\` and `\n` are escapes.
    HelpText,
}

/// Text as it appears in the exposition; [`EscapedStr::unescaped`] decodes it on demand and
/// only allocates when the raw text contains a backslash escape.
#[derive(Clone, Copy, Debug)]
pub struct EscapedStr<'a> {
    raw: &'a str,
    escaping: Escaping,
}

impl<'a> EscapedStr<'a> {
    pub(crate) fn new(raw: &'a str, escaping: Escaping) -> Self {
        Self::known(raw, escaping, raw.as_bytes().contains(&b'\\'))
    }

    /// For a caller that already knows whether `raw` has a backslash.
    fn known(raw: &'a str, escaping: Escaping, has_backslash: bool) -> Self {
        let escaping = if has_backslash {
            escaping
        } else {
            Escaping::Literal
        };
        EscapedStr { raw, escaping }
    }

    /// The text exactly as written in the exposition.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The decoded text. Unknown escapes (`\x`) are kept as written.
    pub fn unescaped(&self) -> Cow<'a, str> {
        let quote_escapes = match self.escaping {
            Escaping::Literal => return Cow::Borrowed(self.raw),
            Escaping::LabelValue => true,
            Escaping::HelpText => false,
        };
        let mut out = String::with_capacity(self.raw.len());
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('"') if quote_escapes => out.push('"'),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            }
        }
        Cow::Owned(out)
    }
}

impl PartialEq for EscapedStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.unescaped() == other.unescaped()
    }
}

impl PartialEq<str> for EscapedStr<'_> {
    fn eq(&self, other: &str) -> bool {
        self.unescaped() == other
    }
}

impl PartialEq<&str> for EscapedStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.unescaped() == *other
    }
}

/// Which reading produced a label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelStyle {
    /// The format's rule: a value ends at the first `"` not escaped by a backslash.
    Escaped,
    /// Envoy's unescaped values: no escapes; a value ends at the first `"` followed by `}`,
    /// or by `,` and then `}` or a label name and `="`. Only tried when the escaped reading
    /// fails for the line.
    EnvoyRaw,
}

/// One label pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Label<'a> {
    pub name: &'a str,
    pub value: EscapedStr<'a>,
}

/// The labels of a sample, in exposition order. Duplicate names are kept as written; finding
/// them is the consumer's job (it sorts labels anyway).
#[derive(Clone, Copy, Debug)]
pub struct Labels<'a> {
    body: &'a str,
    style: LabelStyle,
    len: usize,
}

impl<'a> Labels<'a> {
    pub(crate) fn empty() -> Self {
        Labels {
            body: "",
            style: LabelStyle::Escaped,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Which reading produced these labels.
    pub fn style(&self) -> LabelStyle {
        self.style
    }

    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter {
            cursor: LabelCursor::new(self.body, self.style, Bounds::Body),
            remaining: self.len,
        }
    }

    /// The value of the first label called `name`.
    pub fn get(&self, name: &str) -> Option<EscapedStr<'a>> {
        self.iter()
            .find(|label| label.name == name)
            .map(|label| label.value)
    }
}

impl<'a> IntoIterator for &Labels<'a> {
    type Item = Label<'a>;
    type IntoIter = LabelIter<'a>;

    fn into_iter(self) -> LabelIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Labels`].
#[derive(Clone, Debug)]
pub struct LabelIter<'a> {
    cursor: LabelCursor<'a>,
    remaining: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The body was validated by the same cursor when the line was parsed.
        match self.cursor.next_step() {
            Ok(Step::Label(label)) => Some(label),
            Ok(Step::End { .. }) | Err(_) => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for LabelIter<'_> {}

/// Where a label list ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bounds {
    /// Reading a line after `{`: the list must end with `}`.
    Line,
    /// Reading a stored body: the list ends with the text.
    Body,
}

#[derive(Debug)]
enum Step<'a> {
    Label(Label<'a>),
    /// The list ended; `at` is the index of the closing `}` (or the text length for a body).
    End {
        at: usize,
    },
}

#[derive(Clone, Debug)]
struct LabelCursor<'a> {
    text: &'a str,
    pos: usize,
    style: LabelStyle,
    bounds: Bounds,
}

impl<'a> LabelCursor<'a> {
    fn new(text: &'a str, style: LabelStyle, bounds: Bounds) -> Self {
        LabelCursor {
            text,
            pos: 0,
            style,
            bounds,
        }
    }

    fn end_here(&self, at: usize) -> Result<Step<'a>, SkipReason> {
        let bytes = self.text.as_bytes();
        match (bytes.get(at), self.bounds) {
            (Some(b'}'), _) | (None, Bounds::Body) => Ok(Step::End { at }),
            (None, Bounds::Line) => Err(SkipReason::UnclosedLabelSet),
            (Some(_), _) => Err(SkipReason::MalformedLabelList),
        }
    }

    fn next_step(&mut self) -> Result<Step<'a>, SkipReason> {
        let bytes = self.text.as_bytes();
        let start = skip_blanks(bytes, self.pos);
        match bytes.get(start) {
            None | Some(b'}') => return self.end_here(start),
            _ => {}
        }
        let (name_start, name_end, after_name) = if bytes[start] == b'"' {
            quoted_name(bytes, start).map_err(|reason| match reason {
                SkipReason::InvalidMetricName => SkipReason::InvalidLabelName,
                other => other,
            })?
        } else {
            let end = label_name_end(bytes, start).ok_or(SkipReason::InvalidLabelName)?;
            (start, end, end)
        };
        let equals = skip_blanks(bytes, after_name);
        if bytes.get(equals) != Some(&b'=') {
            return Err(SkipReason::MissingLabelValue);
        }
        let quote = skip_blanks(bytes, equals + 1);
        if bytes.get(quote) != Some(&b'"') {
            return Err(SkipReason::MissingLabelValue);
        }
        let value_start = quote + 1;
        let (value_end, has_backslash) = match self.style {
            LabelStyle::Escaped => escaped_value_end(bytes, value_start)?,
            LabelStyle::EnvoyRaw => (raw_value_end(bytes, value_start)?, false),
        };
        let label = Label {
            name: &self.text[name_start..name_end],
            value: EscapedStr::known(
                &self.text[value_start..value_end],
                Escaping::LabelValue,
                has_backslash,
            ),
        };
        let after = skip_blanks(bytes, value_end + 1);
        match bytes.get(after) {
            Some(b',') => self.pos = after + 1,
            _ => {
                self.end_here(after)?;
                self.pos = after;
            }
        }
        Ok(Step::Label(label))
    }
}

/// The index of the `"` closing an escaped value that starts at `start`, and whether the
/// value has a backslash. A plain loop: label values are short, so it beats a SIMD search.
fn escaped_value_end(bytes: &[u8], start: usize) -> Result<(usize, bool), SkipReason> {
    let mut has_backslash = false;
    let mut pos = start;
    while pos < bytes.len() {
        match bytes[pos] {
            b'"' => return Ok((pos, has_backslash)),
            // A backslash escapes the next byte, whatever it is.
            b'\\' => {
                has_backslash = true;
                pos += 2;
            }
            _ => pos += 1,
        }
    }
    Err(SkipReason::UnterminatedLabelValue)
}

/// The index of the `"` closing an Envoy raw value that starts at `start` (module docs).
fn raw_value_end(bytes: &[u8], start: usize) -> Result<usize, SkipReason> {
    let mut pos = start;
    while let Some(offset) = memchr(b'"', &bytes[pos..]) {
        let quote = pos + offset;
        if closes_raw_value(bytes, quote + 1) {
            return Ok(quote);
        }
        pos = quote + 1;
    }
    Err(SkipReason::UnterminatedLabelValue)
}

/// Whether the text at `after` (just after a `"`) looks like the end of a value.
fn closes_raw_value(bytes: &[u8], after: usize) -> bool {
    match bytes.get(after) {
        None | Some(b'}') => true,
        Some(b',') => {
            let next = skip_blanks(bytes, after + 1);
            let name_end = match bytes.get(next) {
                None | Some(b'}') => return true,
                Some(b'"') => match memchr(b'"', &bytes[next + 1..]) {
                    Some(offset) => next + 1 + offset + 1,
                    None => return false,
                },
                Some(_) => match label_name_end(bytes, next) {
                    Some(end) => end,
                    None => return false,
                },
            };
            let equals = skip_blanks(bytes, name_end);
            bytes.get(equals) == Some(&b'=')
                && bytes.get(skip_blanks(bytes, equals + 1)) == Some(&b'"')
        }
        Some(_) => false,
    }
}

/// Reads the label list of a line, starting just after its `{`. Returns the labels and the
/// index of the closing `}` within `text`.
pub(crate) fn read_label_list(
    text: &str,
    style: LabelStyle,
) -> Result<(Labels<'_>, usize), SkipReason> {
    let mut cursor = LabelCursor::new(text, style, Bounds::Line);
    let mut len = 0;
    loop {
        match cursor.next_step()? {
            Step::Label(_) => len += 1,
            Step::End { at } => {
                let labels = Labels {
                    body: &text[..at],
                    style,
                    len,
                };
                return Ok((labels, at));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, style: LabelStyle) -> Result<(Vec<(String, String)>, usize), SkipReason> {
        let (labels, close) = read_label_list(text, style)?;
        let pairs = labels
            .iter()
            .map(|l| (l.name.to_owned(), l.value.unescaped().into_owned()))
            .collect::<Vec<_>>();
        assert_eq!(pairs.len(), labels.len());
        Ok((pairs, close))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_pairs_and_finds_the_closing_brace() {
        let (got, close) = read(r#"a="1",b="x}y"} 5"#, LabelStyle::Escaped).unwrap();
        assert_eq!(got, pairs(&[("a", "1"), ("b", "x}y")]));
        assert_eq!(close, 13);
    }

    #[test]
    fn empty_list_and_trailing_comma_and_blanks() {
        assert_eq!(read("} 1", LabelStyle::Escaped).unwrap(), (vec![], 0));
        let (got, _) = read(r#" a = "1" , } 1"#, LabelStyle::Escaped).unwrap();
        assert_eq!(got, pairs(&[("a", "1")]));
    }

    #[test]
    fn unescapes_quote_backslash_and_newline_on_demand() {
        let (labels, _) = read_label_list(r#"p="a\"b\\c\nd\x"}"#, LabelStyle::Escaped).unwrap();
        let value = labels.get("p").unwrap();
        assert_eq!(value.raw(), r#"a\"b\\c\nd\x"#);
        assert_eq!(value.unescaped(), "a\"b\\c\nd\\x");
        let (plain, _) = read_label_list(r#"p="abc"}"#, LabelStyle::Escaped).unwrap();
        assert!(matches!(
            plain.get("p").unwrap().unescaped(),
            Cow::Borrowed("abc")
        ));
    }

    #[test]
    fn quoted_label_names_are_accepted() {
        let (got, _) = read(r#""a.b"="1"}"#, LabelStyle::Escaped).unwrap();
        assert_eq!(got, pairs(&[("a.b", "1")]));
    }

    #[test]
    fn malformed_lists_give_their_reason() {
        let cases = [
            (r#"a="1""#, SkipReason::UnclosedLabelSet),
            (r#"a="1"#, SkipReason::UnterminatedLabelValue),
            (r#"a="1\"#, SkipReason::UnterminatedLabelValue),
            (r#"a=1}"#, SkipReason::MissingLabelValue),
            (r#"a}"#, SkipReason::MissingLabelValue),
            (r#"1a="1"}"#, SkipReason::InvalidLabelName),
            (r#",a="1"}"#, SkipReason::InvalidLabelName),
            (r#"a="1" b="2"}"#, SkipReason::MalformedLabelList),
        ];
        for (text, reason) in cases {
            assert_eq!(
                read(text, LabelStyle::Escaped).unwrap_err(),
                reason,
                "{text}"
            );
        }
    }

    #[test]
    fn envoy_raw_values_keep_quotes_and_backslashes() {
        let text = r#"path="/a"b\",x="C:\dir\",y="v"} 1"#;
        assert!(read(text, LabelStyle::Escaped).is_err());
        let (got, close) = read(text, LabelStyle::EnvoyRaw).unwrap();
        assert_eq!(
            got,
            pairs(&[("path", r#"/a"b\"#), ("x", r"C:\dir\"), ("y", "v")])
        );
        assert_eq!(&text[close..], "} 1");
    }

    #[test]
    fn envoy_raw_value_with_comma_quote_not_followed_by_a_label() {
        let (got, _) = read(r#"a="x",y",b="2"}"#, LabelStyle::EnvoyRaw).unwrap();
        assert_eq!(got, pairs(&[("a", r#"x",y"#), ("b", "2")]));
    }

    #[test]
    fn envoy_raw_without_closing_quote_is_unterminated() {
        assert_eq!(
            read(r#"a="x y"#, LabelStyle::EnvoyRaw).unwrap_err(),
            SkipReason::UnterminatedLabelValue
        );
    }

    #[test]
    fn escaped_str_compares_by_decoded_text() {
        let a = EscapedStr::new(r#"a\"b"#, Escaping::LabelValue);
        assert_eq!(a, "a\"b");
        let help = EscapedStr::new(r#"say \"hi\" \\ \n"#, Escaping::HelpText);
        assert_eq!(help.unescaped(), "say \\\"hi\\\" \\ \n");
    }
}
