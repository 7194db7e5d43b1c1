//! Timestamps: microseconds since the Unix epoch in storage, RFC 3339 on the wire
//! (RFC 7643 §2.3.5 dateTime). Pure.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses an RFC 3339 dateTime into microseconds since the epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1000).ok()
}

/// Formats microseconds since the epoch as RFC 3339 in UTC (`2026-11-26T15:35:40.123456Z`).
pub fn format_micros(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offsets() {
        let m = parse_datetime("2011-05-13T04:42:34Z").unwrap();
        assert_eq!(m, 1_305_261_754_000_000);
        assert_eq!(format_micros(m), "2011-05-13T04:42:34Z");
        assert_eq!(parse_datetime("2011-05-13T06:42:34+02:00"), Some(m));
        assert_eq!(parse_datetime("2011-05-13T04:42:34.5Z"), Some(m + 500_000));
        assert_eq!(parse_datetime("2011-05-13"), None);
        assert_eq!(parse_datetime("yesterday"), None);
    }
}
