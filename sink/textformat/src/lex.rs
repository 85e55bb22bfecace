//! Byte-level tokens shared by the line and label parsers: blanks, metric and label names,
//! quoted names.
//!
//! Owns the character classes of the text formats. It must not know about lines, events or
//! label sets.

use crate::skip::SkipReason;

/// Blanks that separate tokens (the formats allow spaces and tabs).
pub(crate) fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// The index of the first non-blank byte at or after `pos`.
pub(crate) fn skip_blanks(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && is_blank(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// The index of the first blank byte at or after `pos` (or the end).
pub(crate) fn token_end(bytes: &[u8], mut pos: usize) -> usize {
    while pos < bytes.len() && !is_blank(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// Character classes of name bytes, as bit flags in a table (names are the hot loop).
const LETTER_OR_UNDERSCORE: u8 = 1;
const DIGIT: u8 = 2;
const COLON: u8 = 4;

const NAME_CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = if b.is_ascii_alphabetic() || b == b'_' {
            LETTER_OR_UNDERSCORE
        } else if b.is_ascii_digit() {
            DIGIT
        } else if b == b':' {
            COLON
        } else {
            0
        };
        byte += 1;
    }
    table
};

fn is_metric_name_start(byte: u8) -> bool {
    NAME_CLASSES[usize::from(byte)] & (LETTER_OR_UNDERSCORE | COLON) != 0
}

fn is_metric_name_byte(byte: u8) -> bool {
    NAME_CLASSES[usize::from(byte)] != 0
}

fn is_label_name_start(byte: u8) -> bool {
    NAME_CLASSES[usize::from(byte)] == LETTER_OR_UNDERSCORE
}

fn is_label_name_byte(byte: u8) -> bool {
    NAME_CLASSES[usize::from(byte)] & (LETTER_OR_UNDERSCORE | DIGIT) != 0
}

/// The end of a classic metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) starting at `pos`, or `None`
/// when no name starts there.
pub(crate) fn metric_name_end(bytes: &[u8], pos: usize) -> Option<usize> {
    if !bytes.get(pos).is_some_and(|&b| is_metric_name_start(b)) {
        return None;
    }
    let mut end = pos + 1;
    while end < bytes.len() && is_metric_name_byte(bytes[end]) {
        end += 1;
    }
    Some(end)
}

/// The end of a classic label name (`[a-zA-Z_][a-zA-Z0-9_]*`) starting at `pos`.
pub(crate) fn label_name_end(bytes: &[u8], pos: usize) -> Option<usize> {
    if !bytes.get(pos).is_some_and(|&b| is_label_name_start(b)) {
        return None;
    }
    let mut end = pos + 1;
    while end < bytes.len() && is_label_name_byte(bytes[end]) {
        end += 1;
    }
    Some(end)
}

/// A quoted UTF-8 name (`"my.metric"`) starting with the quote at `pos`: returns the name's
/// byte range without quotes and the index after the closing quote. Escapes are refused.
pub(crate) fn quoted_name(bytes: &[u8], pos: usize) -> Result<(usize, usize, usize), SkipReason> {
    debug_assert_eq!(bytes.get(pos), Some(&b'"'));
    let start = pos + 1;
    match memchr::memchr2(b'"', b'\\', &bytes[start..]) {
        Some(offset) if bytes[start + offset] == b'"' => {
            let end = start + offset;
            if end == start {
                return Err(SkipReason::InvalidMetricName);
            }
            Ok((start, end, end + 1))
        }
        Some(_) => Err(SkipReason::EscapedQuotedName),
        None => Err(SkipReason::UnterminatedLabelValue),
    }
}

/// A metric name in either form (classic or quoted) at `pos`: `(start, end, next)`.
pub(crate) fn any_metric_name(
    bytes: &[u8],
    pos: usize,
) -> Result<(usize, usize, usize), SkipReason> {
    if bytes.get(pos) == Some(&b'"') {
        return quoted_name(bytes, pos);
    }
    match metric_name_end(bytes, pos) {
        Some(end) => Ok((pos, end, end)),
        None => Err(SkipReason::InvalidMetricName),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_allow_colons_but_not_leading_digits() {
        assert_eq!(metric_name_end(b"a:b_c9 1", 0), Some(6));
        assert_eq!(metric_name_end(b"9abc", 0), None);
        assert_eq!(metric_name_end(b"", 0), None);
    }

    #[test]
    fn label_names_refuse_colons() {
        assert_eq!(label_name_end(b"le=", 0), Some(2));
        assert_eq!(label_name_end(b"a:b", 0), Some(1));
        assert_eq!(label_name_end(b":a", 0), None);
    }

    #[test]
    fn quoted_names_refuse_escapes_and_empty_names() {
        assert_eq!(quoted_name(br#""a.b" "#, 0), Ok((1, 4, 5)));
        assert_eq!(
            quoted_name(br#""a\"b""#, 0),
            Err(SkipReason::EscapedQuotedName)
        );
        assert_eq!(quoted_name(br#""""#, 0), Err(SkipReason::InvalidMetricName));
        assert_eq!(
            quoted_name(br#""abc"#, 0),
            Err(SkipReason::UnterminatedLabelValue)
        );
    }

    #[test]
    fn blanks_are_spaces_and_tabs_only() {
        assert_eq!(skip_blanks(b" \t x", 0), 3);
        assert_eq!(token_end(b"abc\tdef", 0), 3);
        assert!(!is_blank(b'\r'));
    }
}
