//! Time as RocketMQ carries it: milliseconds since the Unix epoch (born and
//! store timestamps, offsets by time), and the UTC calendar date of such an
//! instant, for file names, logs and display. UTC only: no time-zone database.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds per day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Now, in milliseconds since the epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A UTC date and time to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Year, e.g. 2026.
    pub year: i64,
    /// Month, 1-12.
    pub month: i64,
    /// Day of the month, 1-31.
    pub day: i64,
    /// Hour, 0-23.
    pub hour: i64,
    /// Minute, 0-59.
    pub minute: i64,
    /// Second, 0-59.
    pub second: i64,
    /// Millisecond, 0-999.
    pub milli: i64,
}

impl DateTime {
    /// The UTC date and time of `ms` milliseconds since the epoch.
    pub fn from_ms(ms: i64) -> DateTime {
        let (year, month, day) = civil_from_days(ms.div_euclid(MS_PER_DAY));
        let in_day = ms.rem_euclid(MS_PER_DAY);
        DateTime {
            year,
            month,
            day,
            hour: in_day / 3_600_000,
            minute: in_day / 60_000 % 60,
            second: in_day / 1000 % 60,
            milli: in_day % 1000,
        }
    }

    /// Milliseconds since the epoch; `None` if a field is out of its range.
    pub fn to_ms(&self) -> Option<i64> {
        let valid = (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && (0..24).contains(&self.hour)
            && (0..60).contains(&self.minute)
            && (0..60).contains(&self.second)
            && (0..1000).contains(&self.milli);
        if !valid {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let in_day = ((self.hour * 60 + self.minute) * 60 + self.second) * 1000 + self.milli;
        days.checked_mul(MS_PER_DAY)?.checked_add(in_day)
    }

    /// `2026-11-30T20:33:16.027Z`: RFC 3339 in UTC, to the millisecond.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.milli
        )
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01
/// (Howard Hinnant's `civil_from_days`, valid for every `i64` day that fits).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let epoch = DateTime::from_ms(0);
        assert_eq!(epoch.rfc3339(), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z, a leap day.
        let leap = DateTime::from_ms(1_709_210_096_789);
        assert_eq!(leap.rfc3339(), "2024-02-29T12:34:56.789Z");
        assert_eq!(leap.to_ms(), Some(1_709_210_096_789));
        assert_eq!(DateTime::from_ms(-1).rfc3339(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn round_trips_and_rejects_impossible_dates() {
        for ms in [0, 951_782_400_000, 4_102_444_800_000, 1_764_534_796_027] {
            assert_eq!(DateTime::from_ms(ms).to_ms(), Some(ms));
        }
        let mut bad = DateTime::from_ms(0);
        bad.month = 2;
        bad.day = 30;
        assert_eq!(bad.to_ms(), None);
        bad.day = 29;
        bad.year = 1900;
        assert_eq!(bad.to_ms(), None, "1900 was not a leap year");
        bad.year = 2000;
        assert!(bad.to_ms().is_some(), "2000 was");
    }
}
