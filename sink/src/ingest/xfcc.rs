//! Parser of Envoy's `x-forwarded-client-cert` (XFCC) header value.
//!
//! The value is a `,`-separated list of elements, one per proxy that appended one; an element is
//! a `;`-separated list of `key=value` pairs (keys case-insensitive, e.g. `By`, `Hash`,
//! `Subject`, `URI`, `DNS`); a value holding `,`, `;` or `=` is double-quoted, with `\"` for a
//! quote inside it. Optional spaces or tabs around separators are allowed.
//!
//! The parser is strict: anything it cannot read unambiguously is an error, never a guess, so
//! text a client put in front of what a trusted proxy appended can make the header unreadable
//! but cannot change how the trusted element reads. It owns the syntax only; which element to
//! trust and what an identity means is [`super::identity`]'s business.

/// One proxy's element: its pairs in header order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pairs: Vec<(String, String)>,
}

impl Element {
    /// The values of every pair named `key` (compared case-insensitively), in header order.
    pub fn values<'e>(&'e self, key: &'e str) -> impl Iterator<Item = &'e str> + 'e {
        self.pairs
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// What is wrong with an XFCC value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XfccProblem {
    #[error("an empty element or pair")]
    Empty,
    #[error("a key without '='")]
    MissingEquals,
    #[error("a pair without a key")]
    EmptyKey,
    #[error("a quoted value without its closing quote")]
    UnterminatedQuote,
    #[error("a quote inside an unquoted value")]
    QuoteInUnquotedValue,
    #[error("text after a quoted value (expected ';' or ',')")]
    TextAfterQuotedValue,
}

/// An unreadable XFCC value: the problem, the element it is in (1-based) and its byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("x-forwarded-client-cert element {element}, byte {offset}: {problem}")]
pub struct XfccError {
    pub element: usize,
    pub offset: usize,
    pub problem: XfccProblem,
}

/// Parses a whole XFCC value into its elements, first (oldest) to last (newest).
pub fn parse(value: &str) -> Result<Vec<Element>, XfccError> {
    let mut parser = Parser {
        text: value,
        pos: 0,
        element: 1,
    };
    let mut elements = vec![Element::default()];
    loop {
        let (key, value) = parser.pair()?;
        let current = elements.last_mut().expect("one element at least");
        current.pairs.push((key.to_owned(), value));
        parser.skip_whitespace();
        match parser.peek() {
            None => return Ok(elements),
            Some(b';') => parser.pos += 1,
            Some(b',') => {
                parser.pos += 1;
                parser.element += 1;
                elements.push(Element::default());
            }
            Some(_) => return Err(parser.error(XfccProblem::TextAfterQuotedValue)),
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    element: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn error(&self, problem: XfccProblem) -> XfccError {
        XfccError {
            element: self.element,
            offset: self.pos,
            problem,
        }
    }

    /// `key=value`, leaving the cursor just after the value.
    fn pair(&mut self) -> Result<(&'a str, String), XfccError> {
        self.skip_whitespace();
        if matches!(self.peek(), None | Some(b',' | b';')) {
            return Err(self.error(XfccProblem::Empty));
        }
        let key = self.key()?;
        let value = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.unquoted()?
        };
        Ok((key, value))
    }

    fn key(&mut self) -> Result<&'a str, XfccError> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'=') => break,
                None | Some(b',' | b';' | b'"' | b' ' | b'\t') => {
                    return Err(self.error(XfccProblem::MissingEquals))
                }
                Some(_) => self.pos += 1,
            }
        }
        if self.pos == start {
            return Err(self.error(XfccProblem::EmptyKey));
        }
        let key = &self.text[start..self.pos];
        self.pos += 1;
        Ok(key)
    }

    /// A double-quoted value; a backslash takes the next character literally (`\"` is a quote).
    fn quoted(&mut self) -> Result<String, XfccError> {
        let text = self.text;
        let open = self.pos;
        let mut value = String::new();
        let mut chars = text[open + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos = open + 1 + i + 1;
                    return Ok(value);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                c => value.push(c),
            }
        }
        Err(self.error(XfccProblem::UnterminatedQuote))
    }

    /// Everything up to the next `;` or `,` (or the end), trailing whitespace dropped.
    fn unquoted(&mut self) -> Result<String, XfccError> {
        let start = self.pos;
        loop {
            match self.peek() {
                None | Some(b',' | b';') => break,
                Some(b'"') => return Err(self.error(XfccProblem::QuoteInUnquotedValue)),
                Some(_) => self.pos += 1,
            }
        }
        Ok(self.text[start..self.pos]
            .trim_end_matches([' ', '\t'])
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(value: &str) -> XfccProblem {
        parse(value).expect_err(value).problem
    }

    #[test]
    fn reads_envoys_appended_elements_in_order() {
        let value = "By=spiffe://cluster.local/ns/a/sa/x;Hash=ab12;URI=spiffe://cluster.local/ns/b/sa/y,\
                     By=spiffe://cluster.local/ns/meshtap-system/sa/meshtap-sink;Hash=468ed33b;Subject=\"\";URI=spiffe://cluster.local/ns/apps/sa/sleep;DNS=sleep.apps";
        let elements = parse(value).unwrap();
        assert_eq!(elements.len(), 2);
        let last = &elements[1];
        assert_eq!(
            last.values("uri").collect::<Vec<_>>(),
            ["spiffe://cluster.local/ns/apps/sa/sleep"]
        );
        assert_eq!(last.values("Subject").collect::<Vec<_>>(), [""]);
        assert_eq!(last.values("HASH").collect::<Vec<_>>(), ["468ed33b"]);
        assert_eq!(last.values("DNS").collect::<Vec<_>>(), ["sleep.apps"]);
        assert_eq!(
            elements[0].values("URI").collect::<Vec<_>>(),
            ["spiffe://cluster.local/ns/b/sa/y"]
        );
    }

    #[test]
    fn quoted_values_keep_separators_and_escaped_quotes() {
        let value = r#"Subject="CN=a,O=b;c \"q\" \\";URI="spiffe://td/ns/n/sa/s";URI=spiffe://td/ns/m/sa/t"#;
        let elements = parse(value).unwrap();
        assert_eq!(elements.len(), 1);
        assert_eq!(
            elements[0].values("Subject").collect::<Vec<_>>(),
            [r#"CN=a,O=b;c "q" \"#]
        );
        assert_eq!(
            elements[0].values("URI").collect::<Vec<_>>(),
            ["spiffe://td/ns/n/sa/s", "spiffe://td/ns/m/sa/t"],
            "one URI pair per SAN, in order"
        );
    }

    #[test]
    fn whitespace_around_separators_and_empty_values_are_allowed() {
        let elements = parse(" By=a ; URI= , Subject=\"\" ;Hash=h\t").unwrap();
        assert_eq!(elements.len(), 2);
        assert_eq!(elements[0].values("By").collect::<Vec<_>>(), ["a"]);
        assert_eq!(elements[0].values("URI").collect::<Vec<_>>(), [""]);
        assert_eq!(elements[1].values("Hash").collect::<Vec<_>>(), ["h"]);
        assert_eq!(elements[1].values("DNS").count(), 0);
    }

    #[test]
    fn malformed_values_are_errors_naming_element_and_offset() {
        assert_eq!(problem(""), XfccProblem::Empty);
        assert_eq!(problem("By=a,,URI=b"), XfccProblem::Empty);
        assert_eq!(problem("By=a,"), XfccProblem::Empty);
        assert_eq!(problem("By=a;;URI=b"), XfccProblem::Empty);
        assert_eq!(problem("By"), XfccProblem::MissingEquals);
        assert_eq!(problem("By=a;URI"), XfccProblem::MissingEquals);
        assert_eq!(problem("=spiffe://td/ns/a/sa/b"), XfccProblem::EmptyKey);
        assert_eq!(problem("Subject=\"abc"), XfccProblem::UnterminatedQuote);
        assert_eq!(problem("Subject=\"abc\\\""), XfccProblem::UnterminatedQuote);
        assert_eq!(problem("URI=spiffe\"x"), XfccProblem::QuoteInUnquotedValue);
        assert_eq!(problem("Subject=\"a\"b"), XfccProblem::TextAfterQuotedValue);
        let e = parse("By=a,URI=b;Subject=\"x").unwrap_err();
        assert_eq!((e.element, e.offset), (2, 19));
        assert_eq!(
            e.to_string(),
            "x-forwarded-client-cert element 2, byte 19: a quoted value without its closing quote"
        );
    }

    /// What a client sends ahead of the element Envoy appends (`APPEND_FORWARD` adds `,` and
    /// its element) can break the header but never turn the appended element into another.
    #[test]
    fn a_forged_prefix_cannot_rewrite_the_appended_element() {
        let appended =
            "By=spiffe://td/ns/sink/sa/sink;Hash=ff;Subject=\"\";URI=spiffe://td/ns/evil/sa/x";
        for prefix in [
            "URI=spiffe://td/ns/victim/sa/v;Subject=\"",
            "URI=spiffe://td/ns/victim/sa/v;Subject=\"\\",
            "URI=spiffe://td/ns/victim/sa/v;Subject",
            "URI=spiffe://td/ns/victim/sa/v,",
            "URI=spiffe://td/ns/victim/sa/v;URI=\"",
        ] {
            let value = format!("{prefix},{appended}");
            match parse(&value) {
                Err(_) => {}
                Ok(elements) => {
                    let last = elements.last().unwrap();
                    assert_eq!(
                        last.values("URI").collect::<Vec<_>>(),
                        ["spiffe://td/ns/evil/sa/x"],
                        "{value}"
                    );
                }
            }
        }
        let honest = parse(&format!(
            "URI=spiffe://td/ns/victim/sa/v;By=\"x,y\",{appended}"
        ))
        .unwrap();
        assert_eq!(honest.len(), 2);
        assert_eq!(
            honest[1].values("URI").collect::<Vec<_>>(),
            ["spiffe://td/ns/evil/sa/x"]
        );
    }
}
