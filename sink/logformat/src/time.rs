//! RFC 3339 timestamps as nanoseconds since the Unix epoch: parsing the forms container runtimes
//! write (`Z` or a numeric offset, 0–9 fraction digits) and formatting Envoy's `%START_TIME%`
//! (UTC, milliseconds). Owns only calendar arithmetic; it knows nothing about log formats.

use thiserror::Error;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Why a timestamp is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimestampError {
    #[error("timestamp is not RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`)")]
    Malformed,
    #[error("timestamp field out of range")]
    OutOfRange,
}

/// Parses an RFC 3339 timestamp (`2022-07-22T12:24:16.90297571Z`, `2024-06-28T08:40:16.285918+02:00`)
/// into nanoseconds since the Unix epoch, UTC. Fraction digits beyond nine are rejected.
pub fn parse_rfc3339_nanos(text: &[u8]) -> Result<i64, TimestampError> {
    if text.len() < 20 {
        return Err(TimestampError::Malformed);
    }
    let year = digits(text, 0, 4)?;
    expect(text, 4, b'-')?;
    let month = digits(text, 5, 2)?;
    expect(text, 7, b'-')?;
    let day = digits(text, 8, 2)?;
    if !matches!(text[10], b'T' | b't') {
        return Err(TimestampError::Malformed);
    }
    let hour = digits(text, 11, 2)?;
    expect(text, 13, b':')?;
    let minute = digits(text, 14, 2)?;
    expect(text, 16, b':')?;
    let second = digits(text, 17, 2)?;

    let mut pos = 19;
    let mut nanos: i64 = 0;
    if text.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < text.len() && text[pos].is_ascii_digit() {
            pos += 1;
        }
        let fraction_len = pos - start;
        if fraction_len == 0 || fraction_len > 9 {
            return Err(TimestampError::Malformed);
        }
        nanos = digits(text, start, fraction_len)? * 10_i64.pow((9 - fraction_len) as u32);
    }

    let offset_seconds = match &text[pos..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let offset_hours = digits(text, pos + 1, 2)?;
            let offset_minutes = digits(text, pos + 4, 2)?;
            if offset_hours > 23 || offset_minutes > 59 {
                return Err(TimestampError::OutOfRange);
            }
            let magnitude = offset_hours * 3600 + offset_minutes * 60;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return Err(TimestampError::Malformed),
    };

    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(TimestampError::OutOfRange);
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second - offset_seconds;
    seconds
        .checked_mul(NANOS_PER_SECOND)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or(TimestampError::OutOfRange)
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` (Envoy's `%START_TIME%` default: UTC, milliseconds,
/// sub-millisecond digits dropped toward the past).
pub fn write_rfc3339_millis(nanos_since_epoch: i64, out: &mut String) {
    let seconds = nanos_since_epoch.div_euclid(NANOS_PER_SECOND);
    let millis = nanos_since_epoch.rem_euclid(NANOS_PER_SECOND) / 1_000_000;
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let mut buffer = [0u8; 24];
    put_digits(&mut buffer[0..4], year);
    buffer[4] = b'-';
    put_digits(&mut buffer[5..7], month);
    buffer[7] = b'-';
    put_digits(&mut buffer[8..10], day);
    buffer[10] = b'T';
    put_digits(&mut buffer[11..13], second_of_day / 3600);
    buffer[13] = b':';
    put_digits(&mut buffer[14..16], second_of_day / 60 % 60);
    buffer[16] = b':';
    put_digits(&mut buffer[17..19], second_of_day % 60);
    buffer[19] = b'.';
    put_digits(&mut buffer[20..23], millis);
    buffer[23] = b'Z';
    out.push_str(std::str::from_utf8(&buffer).expect("ASCII digits and separators"));
}

fn put_digits(slot: &mut [u8], mut value: i64) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value.rem_euclid(10)) as u8;
        value /= 10;
    }
}

fn digits(text: &[u8], start: usize, len: usize) -> Result<i64, TimestampError> {
    let slice = text
        .get(start..start + len)
        .ok_or(TimestampError::Malformed)?;
    slice.iter().try_fold(0_i64, |acc, &byte| {
        if byte.is_ascii_digit() {
            Ok(acc * 10 + i64::from(byte - b'0'))
        } else {
            Err(TimestampError::Malformed)
        }
    })
}

fn expect(text: &[u8], index: usize, byte: u8) -> Result<(), TimestampError> {
    if text.get(index) == Some(&byte) {
        Ok(())
    } else {
        Err(TimestampError::Malformed)
    }
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years, March-based years).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let march_year = if month <= 2 { year - 1 } else { year };
    let era = march_year.div_euclid(400);
    let year_of_era = march_year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days_since_epoch: i64) -> (i64, i64, i64) {
    let shifted = days_since_epoch + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_containerd_timestamp_with_trimmed_fraction() {
        // 2022-07-22T12:24:16Z = 1658492656 s.
        assert_eq!(
            parse_rfc3339_nanos(b"2022-07-22T12:24:16.90297571Z"),
            Ok(1_658_492_656_902_975_710)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2022-07-22T12:24:16Z"),
            Ok(1_658_492_656_000_000_000)
        );
    }

    #[test]
    fn applies_numeric_offsets() {
        let utc = parse_rfc3339_nanos(b"2024-06-28T06:40:16.285918Z").unwrap();
        assert_eq!(
            parse_rfc3339_nanos(b"2024-06-28T08:40:16.285918+02:00"),
            Ok(utc)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2024-06-27T23:10:16.285918-07:30"),
            Ok(utc)
        );
    }

    #[test]
    fn rejects_malformed_and_out_of_range() {
        for bad in [
            &b"2022-07-22 12:24:16Z"[..],
            b"2022-07-22T12:24:16",
            b"2022-07-22T12:24:16.Z",
            b"2022-07-22T12:24:16.1234567890Z",
            b"2022-07-22T12:24:16+0200",
            b"2022-07-22T12:24:16Zjunk",
            b"20x2-07-22T12:24:16Z",
        ] {
            assert_eq!(
                parse_rfc3339_nanos(bad),
                Err(TimestampError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_rfc3339_nanos(b"2023-02-29T00:00:00Z"),
            Err(TimestampError::OutOfRange)
        );
        assert_eq!(
            parse_rfc3339_nanos(b"2022-13-01T00:00:00Z"),
            Err(TimestampError::OutOfRange)
        );
    }

    #[test]
    fn millis_formatting_round_trips_through_parsing() {
        for text in [
            "2022-07-22T12:24:09.217Z",
            "1970-01-01T00:00:00.000Z",
            "2000-02-29T23:59:59.999Z",
            "2100-03-01T00:00:00.001Z",
            "1969-12-31T23:59:59.500Z",
        ] {
            let nanos = parse_rfc3339_nanos(text.as_bytes()).unwrap();
            let mut rendered = String::new();
            write_rfc3339_millis(nanos, &mut rendered);
            assert_eq!(rendered, text);
        }
    }

    #[test]
    fn millis_formatting_drops_sub_millisecond_digits() {
        let mut rendered = String::new();
        write_rfc3339_millis(1_658_492_656_902_975_710, &mut rendered);
        assert_eq!(rendered, "2022-07-22T12:24:16.902Z");
    }
}
