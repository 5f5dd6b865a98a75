//! RFC 3339 timestamps for `EXT-X-PROGRAM-DATE-TIME` (RFC 8216 §4.3.2.6), from Unix
//! milliseconds, without a date library and without reading the clock.

use std::fmt::Write;

const MS_PER_DAY: i64 = 86_400_000;

/// 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the range RFC 3339's four-digit
/// years can express.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Appends `unix_ms` as `YYYY-MM-DDThh:mm:ss.sssZ` (UTC, millisecond precision). Times outside
/// years 0000–9999 are clamped to that range so the output is always valid RFC 3339.
pub(crate) fn write_rfc3339_ms(out: &mut String, unix_ms: i64) {
    let unix_ms = unix_ms.clamp(MIN_MS, MAX_MS);
    let days = unix_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = unix_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    );
}

/// Proleptic Gregorian date of a day count since 1970-01-01: the era arithmetic of the
/// well-known civil calendar algorithm (400-year eras of 146097 days, years starting in March
/// so the leap day falls at the end).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153; // month index from March = 0
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(ms: i64) -> String {
        let mut s = String::new();
        write_rfc3339_ms(&mut s, ms);
        s
    }

    #[test]
    fn unix_epoch() {
        assert_eq!(fmt(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn millisecond_precision_and_utc_suffix() {
        // 2023-11-14T22:13:20Z is 1_700_000_000 s.
        assert_eq!(fmt(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn leap_day_and_year_ends() {
        // 2024-02-29T12:00:00Z = 1709208000 s.
        assert_eq!(fmt(1_709_208_000_000), "2024-02-29T12:00:00.000Z");
        // 2000-12-31T23:59:59.999Z = 978307199.999 s (2000 is a leap year: day 366).
        assert_eq!(fmt(978_307_199_999), "2000-12-31T23:59:59.999Z");
        assert_eq!(fmt(978_307_200_000), "2001-01-01T00:00:00.000Z");
    }

    #[test]
    fn before_the_epoch_rounds_toward_the_past() {
        assert_eq!(fmt(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn times_beyond_four_digit_years_are_clamped() {
        assert_eq!(fmt(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(fmt(i64::MIN), "0000-01-01T00:00:00.000Z");
        assert_eq!(fmt(MIN_MS), "0000-01-01T00:00:00.000Z");
    }
}
