//! Numbers of the exposition: sample values, timestamps (ms in text 0.0.4, seconds in
//! OpenMetrics) and the canonical text of `le`/`quantile` bounds.
//!
//! Owns number syntax and the canonical float form. It must not know about lines or labels.

use std::fmt::{self, Write as _};

use crate::format::Format;

/// Parses a sample value: decimal floats (`1`, `-1.5e-3`, `.5`), and `NaN`, `Inf`, `+Inf`,
/// `-Inf`, `Infinity` in any case, as Go's `ParseFloat` accepts. Hexadecimal floats are
/// refused.
pub(crate) fn parse_value(token: &str) -> Option<f64> {
    plain_decimal(token.as_bytes()).or_else(|| general_value(token))
}

/// [`parse_value`] of a token not yet known to be UTF-8 (the plain decimals of most lines are
/// read without that check).
pub(crate) fn parse_value_bytes(token: &[u8]) -> Option<f64> {
    plain_decimal(token).or_else(|| general_value(std::str::from_utf8(token).ok()?))
}

/// [`parse_value`] of what [`plain_decimal`] declines: signs, exponents, long digit strings,
/// `NaN` and the infinities.
fn general_value(token: &str) -> Option<f64> {
    let bytes = token.as_bytes();
    let first = *bytes.first()?;
    // Rust's parser also accepts signed NaN (`-nan`), which Go refuses; refuse it too.
    if (first == b'+' || first == b'-')
        && bytes.get(1).is_some_and(|b| b.eq_ignore_ascii_case(&b'n'))
    {
        return None;
    }
    token.parse::<f64>().ok()
}

/// The powers of ten a plain decimal's fraction can need, indexed by exponent (an `f64` holds
/// every power of ten up to 10^22 exactly).
const EXACT_POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Significant digits whose integer an `f64` holds exactly (10^15 < 2^53).
const EXACT_DIGITS: usize = 15;

/// The value of a plain unsigned decimal (`123`, `0.25`, `7.`, `.5`) of at most 15 digits, or
/// `None` for anything else (the general parser takes it). Most values of a scrape are
/// counters and bucket counts written this way. The digits form an integer below 2^53 and the
/// fraction's power of ten is exact, so one correctly rounded division gives the correctly
/// rounded value, the one the general parser gives.
fn plain_decimal(token: &[u8]) -> Option<f64> {
    if token.len() > EXACT_DIGITS + 1 {
        return None;
    }
    let mut integer: u64 = 0;
    let mut digits = 0;
    let mut dot = None;
    for (i, &b) in token.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                integer = integer * 10 + u64::from(b - b'0');
                digits += 1;
            }
            b'.' if dot.is_none() => dot = Some(i),
            _ => return None,
        }
    }
    if digits == 0 || digits > EXACT_DIGITS {
        return None;
    }
    match dot.map_or(0, |dot| token.len() - dot - 1) {
        0 => Some(integer as f64),
        fraction_digits => Some(integer as f64 / EXACT_POWERS_OF_TEN[fraction_digits]),
    }
}

/// Integer seconds at or above this magnitude are taken as milliseconds in OpenMetrics mode:
/// 1e11 s is the year 5138, while 1e11 ms is 1973, so a Prometheus-text section inside an
/// OpenMetrics-typed body (Istio's 15020 merge) keeps its millisecond timestamps.
const SECONDS_MAGNITUDE_LIMIT: i64 = 100_000_000_000;

/// Parses a timestamp into milliseconds since the epoch.
///
/// - Text 0.0.4: an integer is milliseconds (the format's rule); a number with a fraction or
///   exponent is seconds (an OpenMetrics body served as text).
/// - OpenMetrics: a number is seconds, except an integer of magnitude >= 1e11, which is
///   milliseconds (see [`SECONDS_MAGNITUDE_LIMIT`]).
pub(crate) fn parse_timestamp_ms(token: &str, format: Format) -> Option<i64> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let integer: i64 = token.parse().ok()?;
        return match format {
            Format::PrometheusText => Some(integer),
            Format::OpenMetrics if integer.abs() >= SECONDS_MAGNITUDE_LIMIT => Some(integer),
            Format::OpenMetrics => integer.checked_mul(1000),
        };
    }
    let seconds = parse_value(token)?;
    let millis = (seconds * 1000.0).round();
    // `i64::MAX as f64` rounds up to 2^63, so the upper bound is exclusive.
    if millis.is_finite() && millis >= i64::MIN as f64 && millis < i64::MAX as f64 {
        Some(millis as i64)
    } else {
        None
    }
}

/// Longest canonical text: a sign, 17 significant digits, a point and `e-308`.
const FLOAT_TEXT_CAPACITY: usize = 32;

/// The canonical text of a float, kept on the stack (see [`canonical_float`]).
#[derive(Clone, Copy)]
pub struct FloatText {
    bytes: [u8; FLOAT_TEXT_CAPACITY],
    len: usize,
}

impl FloatText {
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into `bytes`.
        std::str::from_utf8(&self.bytes[..self.len]).expect("float text is ASCII")
    }
}

impl fmt::Debug for FloatText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for FloatText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Write for FloatText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > FLOAT_TEXT_CAPACITY {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The canonical text of an `le` or `quantile` bound, so that `1`, `1.0` and `1e0` name the
/// same series: `NaN`, `+Inf`, `-Inf`; the shortest round-trip decimal without exponent when
/// 1e-4 <= |x| < 1e21 or x = 0 (`1`, `0.5`, `1800000`, which is also how Envoy prints Istio's
/// buckets and how the sink prints report buckets); otherwise Go's exponent form (`1e-05`,
/// `9.999999999999999e-10`, `1e+21`), as Prometheus prints small and huge bounds.
pub fn canonical_float(value: f64) -> FloatText {
    let mut text = FloatText {
        bytes: [0; FLOAT_TEXT_CAPACITY],
        len: 0,
    };
    let written = if value.is_nan() {
        text.write_str("NaN")
    } else if value == f64::INFINITY {
        text.write_str("+Inf")
    } else if value == f64::NEG_INFINITY {
        text.write_str("-Inf")
    } else if value == 0.0 || (1e-4..1e21).contains(&value.abs()) {
        write!(text, "{value}")
    } else {
        write_go_exponent(&mut text, value)
    };
    written.expect("canonical float fits its buffer");
    text
}

/// Writes Rust's shortest exponent form (`1e-5`) with Go's exponent spelling (`1e-05`).
fn write_go_exponent(text: &mut FloatText, value: f64) -> fmt::Result {
    let mut rust = FloatText {
        bytes: [0; FLOAT_TEXT_CAPACITY],
        len: 0,
    };
    write!(rust, "{value:e}")?;
    let rust = rust.as_str();
    let (mantissa, exponent) = rust.split_once('e').expect("`{:e}` writes an exponent");
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    write!(text, "{mantissa}e{sign}")?;
    if digits.len() < 2 {
        text.write_char('0')?;
    }
    text.write_str(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_go_syntax() {
        assert_eq!(parse_value("1"), Some(1.0));
        assert_eq!(parse_value("-1.5e-3"), Some(-0.0015));
        assert_eq!(parse_value(".5"), Some(0.5));
        assert_eq!(parse_value("1.0e+06"), Some(1e6));
        assert_eq!(parse_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_value("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_value("Infinity"), Some(f64::INFINITY));
        assert!(parse_value("NaN").unwrap().is_nan());
        assert!(parse_value("nan").unwrap().is_nan());
        for bad in [
            "", "-nan", "+NaN", "0x10", "1_000", "1,5", "one", "1e", "--1",
        ] {
            assert_eq!(parse_value(bad), None, "{bad}");
        }
    }

    /// Plain decimals (read without the general parser) get the bits the general parser
    /// gives, for digit strings of every length around the 15-digit limit, with and without
    /// a fraction, leading zeros and a dot at either end.
    #[test]
    fn plain_decimals_read_as_the_general_parser_reads_them() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut fast = 0;
        for _ in 0..200_000 {
            let len = (next() % 18 + 1) as usize;
            let mut token: String = (0..len)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            if next() % 3 > 0 {
                let at = (next() as usize) % (len + 1);
                token.insert(at, '.');
            }
            let general: f64 = token.parse().unwrap();
            if let Some(value) = plain_decimal(token.as_bytes()) {
                fast += 1;
                assert_eq!(value.to_bits(), general.to_bits(), "{token}");
            }
            assert_eq!(
                parse_value_bytes(token.as_bytes()).map(f64::to_bits),
                Some(general.to_bits()),
                "{token}"
            );
        }
        assert!(fast > 100_000, "the fast path read {fast}");
        for declined in [
            "",
            ".",
            "1..2",
            "-1",
            "+1",
            "1e3",
            "0x1",
            "1234567890123456",
        ] {
            assert_eq!(plain_decimal(declined.as_bytes()), None, "{declined}");
        }
        assert_eq!(parse_value_bytes(b"-1.5e-3"), Some(-0.0015));
        assert_eq!(parse_value_bytes(b"\xff1"), None);
    }

    #[test]
    fn text_timestamps_are_milliseconds() {
        assert_eq!(
            parse_timestamp_ms("1520879607789", Format::PrometheusText),
            Some(1520879607789)
        );
        assert_eq!(parse_timestamp_ms("-1", Format::PrometheusText), Some(-1));
        assert_eq!(
            parse_timestamp_ms("1520879607.789", Format::PrometheusText),
            Some(1520879607789)
        );
        assert_eq!(parse_timestamp_ms("12a", Format::PrometheusText), None);
        assert_eq!(parse_timestamp_ms("-", Format::PrometheusText), None);
        assert_eq!(
            parse_timestamp_ms("99999999999999999999", Format::PrometheusText),
            None
        );
    }

    #[test]
    fn openmetrics_timestamps_are_seconds_unless_too_large() {
        assert_eq!(
            parse_timestamp_ms("1520879607", Format::OpenMetrics),
            Some(1520879607000)
        );
        assert_eq!(
            parse_timestamp_ms("1.7268398142239082e+09", Format::OpenMetrics),
            Some(1726839814224)
        );
        assert_eq!(
            parse_timestamp_ms("1520879607789", Format::OpenMetrics),
            Some(1520879607789)
        );
        assert_eq!(parse_timestamp_ms("NaN", Format::OpenMetrics), None);
        assert_eq!(parse_timestamp_ms("+Inf", Format::OpenMetrics), None);
        assert_eq!(parse_timestamp_ms("1e300", Format::OpenMetrics), None);
    }

    #[test]
    fn canonical_floats() {
        let cases = [
            (1.0, "1"),
            (0.5, "0.5"),
            (1800000.0, "1800000"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (9.999999999999999e-10, "9.999999999999999e-10"),
            (-5e-324, "-5e-324"),
            (1e21, "1e+21"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.2250738585072014e-308, "-2.2250738585072014e-308"),
            (0.0, "0"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (value, text) in cases {
            assert_eq!(canonical_float(value).as_str(), text, "{value:e}");
        }
    }

    #[test]
    fn spellings_of_one_bound_agree() {
        for spelling in ["1", "1.0", "1e0", "1.000", "0.1e1", "+1"] {
            let value = parse_value(spelling).unwrap();
            assert_eq!(canonical_float(value).as_str(), "1", "{spelling}");
        }
    }
}
