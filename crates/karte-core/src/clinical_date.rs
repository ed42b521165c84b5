//! The clinical date of a note: the calendar day the note describes (診療日), which is not always the day it was
//! typed (a note written after midnight, or entered late). Discharge summaries and referral letters choose their
//! source notes by it.
//!
//! One type for every boundary (store, CLI, Tauri IPC, the window): always `YYYY-MM-DD` on the wire, validated when
//! it is read, so a front end cannot hand the store a day that does not exist. No clock here (karte-core reads no
//! clock): "today" and the time zone come from the caller, which makes every rule a function of its inputs.

use crate::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A calendar day between 1900-01-01 and 9999-12-31, ordered by time. Its text form `YYYY-MM-DD` also sorts in
/// time order, which is why the store keeps it as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClinicalDate {
    /// Days since 1970-01-01.
    days: i32,
}

const MIN_YEAR: i32 = 1900;
const MAX_YEAR: i32 = 9999;

impl ClinicalDate {
    /// Reads `YYYY-MM-DD` (surrounding blanks ignored). Anything else, or a day the calendar lacks (2月30日), is
    /// `input.date_invalid`; the message never repeats what was typed.
    pub fn parse(text: &str) -> Result<ClinicalDate> {
        let b = text.trim().as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            b[r].iter().try_fold(0u32, |n, c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let shape = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
        let parts = shape
            .then(|| Some((digits(0..4)?, digits(5..7)?, digits(8..10)?)))
            .flatten();
        let (y, m, d) = parts.ok_or_else(|| {
            date_invalid("診療日は 2026-12-01 のように「年-月-日」（半角数字）で入力してください。")
        })?;
        ClinicalDate::from_ymd(y as i32, m, d)
    }

    /// The day `y-m-d`, if the calendar has it (years 1900–9999).
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Result<ClinicalDate> {
        let valid = (MIN_YEAR..=MAX_YEAR).contains(&y)
            && (1..=12).contains(&m)
            && d >= 1
            && d <= days_in_month(y, m);
        if !valid {
            return Err(date_invalid(
                "診療日が暦にない日付です（月は1〜12、日はその月の日数まで）。日付を確認してください。",
            ));
        }
        Ok(ClinicalDate {
            days: days_from_civil(y, m, d),
        })
    }

    /// The calendar day at Unix time `ms` on a clock `utc_offset_s` seconds ahead of UTC (JST: +32 400). A note
    /// saved at 00:30 JST is on the JST day, not on the UTC day before.
    pub fn from_unix_ms(ms: i64, utc_offset_s: i32) -> ClinicalDate {
        let local_s = ms.div_euclid(1000) + i64::from(utc_offset_s);
        ClinicalDate {
            days: local_s.div_euclid(86_400) as i32,
        }
    }

    /// Whole days from `earlier` to this date (negative when `earlier` is the later one).
    pub fn days_since(self, earlier: ClinicalDate) -> i32 {
        self.days - earlier.days
    }

    /// `(year, month, day)`.
    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.days)
    }

    /// This date, unless it lies after `today`: a note cannot describe a day that has not come.
    pub fn not_after(self, today: ClinicalDate) -> Result<ClinicalDate> {
        if self > today {
            return Err(date_invalid(
                "診療日が今日より後の日付になっています。診察した日（今日またはそれより前）を入力してください。",
            ));
        }
        Ok(self)
    }

    /// `[from, to]` as given, unless `from` lies after `to`.
    pub fn range(from: ClinicalDate, to: ClinicalDate) -> Result<(ClinicalDate, ClinicalDate)> {
        if from > to {
            return Err(date_invalid(
                "期間の開始日が終了日より後になっています。開始日と終了日を確認してください。",
            ));
        }
        Ok((from, to))
    }
}

fn date_invalid(message: &str) -> Error {
    Error::new(Code::DateInvalid, message)
}

impl fmt::Display for ClinicalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for ClinicalDate {
    type Err = Error;
    fn from_str(s: &str) -> Result<ClinicalDate> {
        ClinicalDate::parse(s)
    }
}

impl TryFrom<String> for ClinicalDate {
    type Error = Error;
    fn try_from(s: String) -> Result<ClinicalDate> {
        ClinicalDate::parse(&s)
    }
}

impl From<ClinicalDate> for String {
    fn from(d: ClinicalDate) -> String {
        d.to_string()
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's days_from_civil: days since 1970-01-01 of the proleptic Gregorian day `y-m-d`.
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JST: i32 = 9 * 3600;

    #[test]
    fn reads_calendar_days_and_writes_them_back() {
        for text in [
            "2026-12-01",
            "2000-02-29",
            "2024-02-29",
            "1900-01-01",
            "9999-12-31",
            "1970-01-01",
        ] {
            let d = ClinicalDate::parse(text).unwrap();
            assert_eq!(d.to_string(), text);
            assert_eq!(text.parse::<ClinicalDate>().unwrap(), d);
        }
        assert_eq!(
            ClinicalDate::parse(" 2026-12-01\n").unwrap().ymd(),
            (2026, 12, 1)
        );
    }

    #[test]
    fn refuses_what_is_not_a_calendar_day_without_repeating_it() {
        for text in [
            "",
            "2026-2-1",
            "2026/12/01",
            "2026-12-1",
            "20261201",
            "2026-12-01T00:00",
            "２０２６-１２-０１",
            "2026-13-01",
            "2026-00-10",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-12-00",
            "1899-12-31",
            "+2026-12-01",
            "2026-1a-01",
        ] {
            let e = ClinicalDate::parse(text).unwrap_err();
            assert_eq!(e.code, Code::DateInvalid, "{text:?}");
            assert!(
                text.trim().is_empty() || !e.message.contains(text.trim()),
                "{text:?}: {}",
                e.message
            );
        }
    }

    /// The local day of an instant, at the boundaries that matter on a Japanese ward: 00:30 JST is still the UTC
    /// day before.
    #[test]
    fn the_day_of_an_instant_is_the_day_on_the_wards_clock() {
        let table: &[(i64, i32, &str)] = &[
            // 2026-11-30T15:30:00Z = 2026-12-01 00:30 JST
            (1_796_052_600_000, JST, "2026-12-01"),
            (1_796_052_600_000, 0, "2026-11-30"),
            // 2026-11-30T14:59:59.999Z = 23:59:59.999 JST, still the 30th
            (1_796_050_799_999, JST, "2026-11-30"),
            (1_796_050_800_000, JST, "2026-12-01"),
            // Behind UTC: 2026-12-01T03:00Z is the 30th in Honolulu (−10:00)
            (1_796_094_000_000, -10 * 3600, "2026-11-30"),
            (0, 0, "1970-01-01"),
            (-1, 0, "1969-12-31"),
            (951_782_400_000, 0, "2000-02-29"),
        ];
        for &(ms, off, want) in table {
            assert_eq!(
                ClinicalDate::from_unix_ms(ms, off).to_string(),
                want,
                "{ms} {off}"
            );
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips_and_orders() {
        let mut prev: Option<ClinicalDate> = None;
        for days in days_from_civil(1900, 1, 1)..days_from_civil(2301, 1, 1) {
            let (y, m, d) = civil_from_days(days);
            let date = ClinicalDate::from_ymd(y, m, d).unwrap();
            assert_eq!(date.days, days);
            assert_eq!(ClinicalDate::parse(&date.to_string()).unwrap(), date);
            if let Some(p) = prev {
                assert!(p < date && p.to_string() < date.to_string());
            }
            prev = Some(date);
        }
    }

    #[test]
    fn future_days_and_reversed_ranges_are_refused() {
        let today = ClinicalDate::parse("2026-12-06").unwrap();
        let d = |s| ClinicalDate::parse(s).unwrap();
        assert_eq!(d("2026-12-06").not_after(today).unwrap(), today);
        assert_eq!(d("2026-12-05").not_after(today).unwrap(), d("2026-12-05"));
        assert_eq!(
            d("2026-12-07").not_after(today).unwrap_err().code,
            Code::DateInvalid
        );
        assert!(ClinicalDate::range(d("2026-12-01"), d("2026-12-01")).is_ok());
        assert!(ClinicalDate::range(d("2026-11-01"), d("2026-12-01")).is_ok());
        assert_eq!(
            ClinicalDate::range(d("2026-12-02"), d("2026-12-01"))
                .unwrap_err()
                .code,
            Code::DateInvalid
        );
    }

    #[test]
    fn crosses_json_as_its_text_and_is_checked_on_the_way_in() {
        let d = ClinicalDate::parse("2026-12-01").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), r#""2026-12-01""#);
        assert_eq!(
            serde_json::from_str::<ClinicalDate>(r#""2026-12-01""#).unwrap(),
            d
        );
        for bad in [r#""2026-02-30""#, r#""yesterday""#, "20261201"] {
            assert!(serde_json::from_str::<ClinicalDate>(bad).is_err(), "{bad}");
        }
    }
}
