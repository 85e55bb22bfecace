//! Envoy's access-log line in Istio's default TEXT format for one simulated stream, read off
//! the same headers and properties the filter sees (so a tailed line and a filter-shipped
//! record of one request say the same), and the RFC 3339 timestamps both it and the CRI prefix
//! use.
//!
//! Formatting only; writing files is `pod_logs.rs`.

use crate::host::properties::path_key;
use crate::host::{HttpExchange, Phase, Properties};

/// `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ...` for
/// `exchange`, started at `start_nanos` (Unix ns), with the call's response flags text.
pub fn text_line(exchange: &HttpExchange, start_nanos: u64, flags: &str) -> String {
    let props = &exchange.properties;
    let request = |name: &str| header(&exchange.request_headers, name).unwrap_or("-");
    let response = |name: &str| {
        exchange
            .response
            .as_ref()
            .and_then(|r| header(&r.headers, name))
    };
    let prop = |parts: &[&str]| text(props, parts).unwrap_or_else(|| "-".into());
    let number = |parts: &[&str]| int(props, parts).unwrap_or(0);
    format!(
        "[{}] \"{} {} {}\" {} {flags} {} - \"-\" {} {} {} {} \"-\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
        rfc3339(start_nanos, 3),
        request(":method"),
        request(":path"),
        prop(&["request", "protocol"]),
        response(":status").unwrap_or("0"),
        prop(&["response", "code_details"]),
        number(&["request", "size"]),
        number(&["response", "size"]),
        number(&["request", "duration"]) / 1_000_000,
        response("x-envoy-upstream-service-time").unwrap_or("-"),
        request("user-agent"),
        request("x-request-id"),
        request(":authority"),
        prop(&["upstream", "address"]),
        prop(&["xds", "cluster_name"]),
        prop(&["upstream", "local_address"]),
        prop(&["destination", "address"]),
        prop(&["source", "address"]),
        prop(&["connection", "requested_server_name"]),
        prop(&["xds", "route_name"]),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn text(props: &Properties, parts: &[&str]) -> Option<String> {
    let bytes = props.lookup(&path_key(parts), Phase::Log)?;
    String::from_utf8(bytes).ok()
}

fn int(props: &Properties, parts: &[&str]) -> Option<i64> {
    let bytes = props.lookup(&path_key(parts), Phase::Log)?;
    Some(i64::from_le_bytes(bytes.try_into().ok()?))
}

/// `2024-05-01T12:34:56.789Z` with `digits` (0..=9) fraction digits.
pub fn rfc3339(unix_nanos: u64, digits: u32) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let fraction = (unix_nanos % 1_000_000_000) / 10u64.pow(9 - digits);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if digits > 0 {
        out.push_str(&format!(".{fraction:0width$}", width = digits as usize));
    }
    out.push('Z');
    out
}

/// Howard Hinnant's days-to-civil: (year, month, day) of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 3), "1970-01-01T00:00:00.000Z");
        // 2022-07-22T12:24:12.325744791Z, a line of the reference CRI capture.
        assert_eq!(
            rfc3339(1_658_492_652_325_744_791, 9),
            "2022-07-22T12:24:12.325744791Z"
        );
        assert_eq!(rfc3339(951_782_400_000_000_000, 0), "2000-02-29T00:00:00Z");
    }
}
