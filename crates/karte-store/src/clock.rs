//! Wall-clock time as Unix milliseconds, and its ISO 8601 form for exports; the local calendar day for clinical
//! dates.
//!
//! Kept to integers in the database so that the audit hash covers an exact value (no formatting or time-zone
//! rules can change what was hashed), and formatted only at the edges. The one place a time zone enters is the
//! clinical date: a ward's day is the day on its own clock (a note saved at 00:30 JST belongs to that JST day, not
//! to the UTC day before), so it is the workstation's zone: `TZ` when set (an IANA name such as `Asia/Tokyo`, or a
//! POSIX rule), else the system's (`/etc/localtime`, Windows' setting), else UTC.

use karte_core::ClinicalDate;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The calendar day at Unix time `ms` on the workstation's clock (see the module comment for which zone).
pub(crate) fn local_date(ms: i64) -> ClinicalDate {
    ClinicalDate::from_unix_ms(ms, local_offset_s(ms))
}

/// Today on the workstation's clock: the default clinical date and the latest one a note may have. Public so that
/// a front end can refuse a future date before it signs in or drafts, by the same clock the store uses.
pub fn today() -> ClinicalDate {
    local_date(now_ms())
}

/// The workstation zone's offset from UTC at `ms`, in seconds (daylight saving included where a zone has it).
fn local_offset_s(ms: i64) -> i32 {
    let tz = jiff::tz::TimeZone::system();
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| tz.to_offset(t).seconds())
        .unwrap_or(0)
}

/// `2026-11-24T09:15:02.123Z`. Hand-rolled (days-from-civil inverse) to avoid a date crate for one format.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // The UTC calendar day: the one civil-from-days conversion, in ClinicalDate.
    let (y, mo, d) = ClinicalDate::from_unix_ms(ms, 0).ymd();
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn known_instants() {
        for (ms, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_795_511_702_123, "2026-11-24T09:15:02.123Z"),
            (4_107_542_399_999, "2100-02-28T23:59:59.999Z"),
        ] {
            assert_eq!(iso8601(ms), want, "{ms}");
        }
    }
}
