//! The streaming parser: splits a body into lines and yields one [`Event`] or [`SkippedLine`]
//! per meaningful line, counting everything in [`ParseStats`].
//!
//! Owns line splitting, line numbers, UTF-8 checks, the `# EOF` rule and the counters. It
//! must not know what families are (see [`crate::family`]) nor allocate per line. Callers
//! with a fast path of their own take lines one by one ([`Parser::next_line`]) and hand the
//! ones they do not handle to [`Parser::read_line`].

use memchr::memchr;

use crate::event::Event;
use crate::format::Format;
use crate::labels::LabelStyle;
use crate::line::{parse_line, Line};
use crate::skip::{ParseStats, SkipReason, SkippedLine};

/// Iterator over the events of one exposition body. An `Err` item is a skipped line: it never
/// ends the iteration.
///
/// Lines end with `\n`; a `\r` before it is dropped, and the last line may lack its `\n`.
/// `# EOF` yields [`Event::Eof`] and parsing goes on: Istio's 15020 body is a concatenation,
/// so text after an `# EOF` is another exposition, not garbage (counted in
/// [`ParseStats::lines_after_eof`]). Callers that want OpenMetrics' strict end stop at the
/// first `Eof`.
#[derive(Debug)]
pub struct Parser<'a> {
    rest: &'a [u8],
    format: Format,
    line_no: u64,
    seen_eof: bool,
    stats: ParseStats,
}

impl<'a> Parser<'a> {
    pub fn new(body: &'a [u8], format: Format) -> Self {
        Parser {
            rest: body,
            format,
            line_no: 0,
            seen_eof: false,
            stats: ParseStats::default(),
        }
    }

    /// A parser for a body served with this Content-Type header value.
    pub fn for_content_type(body: &'a [u8], content_type: Option<&str>) -> Self {
        Parser::new(body, Format::from_content_type(content_type))
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The counters so far (final once the iterator returned `None`).
    pub fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// The 1-based number of the line read last (0 before the first).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    pub(crate) fn stats_mut(&mut self) -> &mut ParseStats {
        &mut self.stats
    }

    /// The next physical line, without its line break (and without a `\r` before it); counted
    /// in [`ParseStats::lines`]. Give it to [`Parser::read_line`], or count it with
    /// [`Parser::count_quick_sample`] when the caller read the sample itself.
    pub fn next_line(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match memchr(b'\n', self.rest) {
            Some(end) => (&self.rest[..end], &self.rest[end + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        self.line_no += 1;
        self.stats.lines += 1;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }

    /// Counts a sample line that the caller read with [`crate::quick_sample`] instead of
    /// [`Parser::read_line`], so that [`ParseStats`] stay complete.
    pub fn count_quick_sample(&mut self) {
        self.stats.samples += 1;
        if self.seen_eof {
            self.stats.lines_after_eof += 1;
        }
    }

    /// Parses a line returned by [`Parser::next_line`]: `None` for a blank or comment line,
    /// else its event or why it was skipped (counted either way).
    pub fn read_line(&mut self, bytes: &'a [u8]) -> Option<Result<Event<'a>, SkippedLine>> {
        let line = match std::str::from_utf8(bytes) {
            Ok(line) => line,
            Err(_) => return Some(Err(self.skip(SkipReason::InvalidUtf8))),
        };
        let parsed = parse_line(line, self.format);
        if self.seen_eof && !matches!(parsed, Ok(Line::Blank)) {
            self.stats.lines_after_eof += 1;
        }
        match parsed {
            Ok(Line::Blank) => None,
            Ok(Line::Comment) => {
                self.stats.comments += 1;
                None
            }
            Ok(Line::Event(event)) => {
                match &event {
                    Event::Sample(sample) => {
                        self.stats.samples += 1;
                        if sample.labels.style() == LabelStyle::EnvoyRaw {
                            self.stats.raw_label_samples += 1;
                        }
                    }
                    Event::Eof => {
                        self.seen_eof = true;
                        self.stats.eofs += 1;
                    }
                    Event::Help { .. } | Event::Type { .. } | Event::Unit { .. } => {}
                }
                Some(Ok(event))
            }
            Err(reason) => Some(Err(self.skip(reason))),
        }
    }

    fn skip(&mut self, reason: SkipReason) -> SkippedLine {
        self.stats.record_skip(reason);
        SkippedLine {
            line_no: self.line_no,
            reason,
        }
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Event<'a>, SkippedLine>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let bytes = self.next_line()?;
            if let Some(item) = self.read_line(bytes) {
                return Some(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_skips_bad_ones_without_stopping() {
        let body = b"# HELP a A.\n# TYPE a gauge\na 1\n\nbad line here\n# comment\r\na{x=\"y\"} 2";
        let mut parser = Parser::new(body, Format::PrometheusText);
        let items: Vec<_> = parser.by_ref().collect();
        assert_eq!(items.len(), 5);
        assert_eq!(
            items[3].as_ref().unwrap_err(),
            &SkippedLine {
                line_no: 5,
                reason: SkipReason::InvalidValue
            }
        );
        let stats = parser.stats();
        assert_eq!(stats.lines, 7);
        assert_eq!(stats.samples, 2);
        assert_eq!(stats.comments, 1);
        assert_eq!(stats.bad_lines, 1);
        assert_eq!(stats.by_reason.get(SkipReason::InvalidValue), 1);
    }

    #[test]
    fn invalid_utf8_is_one_bad_line() {
        let body = b"a 1\nb\xff 2\nc 3\n";
        let mut parser = Parser::new(body, Format::PrometheusText);
        let samples = parser.by_ref().filter(|item| item.is_ok()).count();
        assert_eq!(samples, 2);
        assert_eq!(parser.stats().by_reason.get(SkipReason::InvalidUtf8), 1);
    }

    #[test]
    fn parsing_goes_on_after_eof() {
        let body = b"# TYPE a counter\na_total 1\n# EOF\nb 2\n# EOF\n";
        let mut parser = Parser::for_content_type(body, Some("application/openmetrics-text"));
        let eofs = parser
            .by_ref()
            .filter(|item| matches!(item, Ok(Event::Eof)))
            .count();
        assert_eq!(eofs, 2);
        let stats = parser.stats();
        assert_eq!(
            (stats.samples, stats.eofs, stats.lines_after_eof),
            (2, 2, 2)
        );
    }

    #[test]
    fn empty_body_yields_nothing() {
        let mut parser = Parser::new(b"", Format::OpenMetrics);
        assert!(parser.next().is_none());
        assert_eq!(parser.stats().lines, 0);
    }

    #[test]
    fn raw_label_samples_are_counted() {
        let body = b"envoy_x{v=\"a\"b\"} 1\n";
        let mut parser = Parser::new(body, Format::PrometheusText);
        assert!(matches!(parser.next(), Some(Ok(Event::Sample(_)))));
        assert_eq!(parser.stats().raw_label_samples, 1);
    }
}
