//! hkmsd's clock: Unix seconds, and their RFC 3339 form.
//!
//! Everything that runs by the clock (automatic rotation, deletion at the end of a pending
//! window, expiry of imported material and of import parameters) reads [`now_unix`], and so
//! does every decision hkmsd makes on a ClientKey: its validity and retirement, the date of
//! a signed request, the days left it reports.
//!
//! Tests need to move that clock by days. A debug build (`cargo build`, `cargo test`) adds
//! the offset in seconds written in the file named by `HKMS_TEST_CLOCK_FILE`, read at each
//! call. A release build (every package and image) has no such code: the variable is
//! ignored, so a production build cannot turn the offset on.

/// The environment variable that names the test clock's offset file. Only debug builds
/// know it: `scripts/package-deb.sh` checks that the release binary does not contain it.
#[cfg(debug_assertions)]
pub const TEST_CLOCK_ENV: &str = "HKMS_TEST_CLOCK_FILE";

/// Seconds since 1970-01-01 UTC.
pub fn now_unix() -> i64 {
    now_unix_micros().0
}

/// Seconds since 1970-01-01 UTC and the microseconds past them, from one reading of the
/// clock.
pub fn now_unix_micros() -> (i64, u32) {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (real.as_secs() as i64 + test_offset(), real.subsec_micros())
}

#[cfg(debug_assertions)]
fn test_offset() -> i64 {
    let Some(path) = std::env::var_os(TEST_CLOCK_ENV) else {
        return 0;
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(not(debug_assertions))]
fn test_offset() -> i64 {
    0
}

/// A warning for hkmsd's log when this build moves its clock (a debug build with the test
/// clock set); `None` otherwise, and always in release builds.
pub fn test_clock_warning() -> Option<String> {
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os(TEST_CLOCK_ENV) {
        return Some(format!(
            "{TEST_CLOCK_ENV} is set: this debug build adds the offset in {} to its clock \
             (tests only; release builds have no such code)",
            std::path::Path::new(&path).display()
        ));
    }
    None
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    rfc3339(now_unix())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds.
pub fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Unix seconds of `YYYY-MM-DD` 00:00:00 UTC.
pub fn date_to_unix(date: &str) -> Result<i64, String> {
    let bad = || format!("{date:?} is not a date like 2026-01-31");
    let parts: Vec<&str> = date.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let t = (era * 146_097 + doe - 719_468) * 86_400;
    if rfc3339(t).get(..10) != Some(date.trim()) {
        return Err(bad());
    }
    Ok(t)
}

/// Unix seconds of `YYYY-MM-DDTHH:MM:SSZ`, the RFC 3339 form hkms writes ([`rfc3339`]):
/// UTC, whole seconds, two digits for each part of the time.
pub fn rfc3339_to_unix(t: &str) -> Result<i64, String> {
    let bad = || format!("{t:?} is not a time like 2026-01-31T12:00:00Z");
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let day = date_to_unix(date).map_err(|_| bad())?;
    let time = time.strip_suffix('Z').ok_or_else(bad)?;
    let mut parts = time.split(':').map(|p| {
        if p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()) {
            p.parse::<i64>().ok()
        } else {
            None
        }
    });
    let (Some(Some(h)), Some(Some(m)), Some(Some(s)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if h > 23 || m > 59 || s > 60 {
        return Err(bad());
    }
    Ok(day + h * 3600 + m * 60 + s)
}

/// The same time of day on the same date `years` later (Unix seconds); February 29 falls
/// on February 28 in a year that has no such day.
pub fn years_after(t: i64, years: i64) -> i64 {
    let date = rfc3339(t);
    let (y, rest) = date.split_at(4);
    let y: i64 = y.parse().unwrap_or(1970) + years;
    let (m, d) = (&rest[1..3], &rest[4..6]);
    let day = date_to_unix(&format!("{y:04}-{m}-{d}"))
        .or_else(|_| date_to_unix(&format!("{y:04}-{m}-28")))
        .unwrap_or(t.div_euclid(86_400) * 86_400 + years * 365 * 86_400);
    day + t.rem_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_418_358), "2026-11-23T07:19:18Z");
        assert_eq!(date_to_unix("2026-11-23").unwrap(), 1_795_392_000);
        assert_eq!(date_to_unix("2024-02-29").unwrap() % 86_400, 0);
        for bad in ["2026-02-30", "2026-13-01", "x", "2026-1"] {
            assert!(date_to_unix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339_times_convert_both_ways() {
        for t in [
            0,
            1,
            86_399,
            1_700_000_000,
            1_767_225_599,
            2_147_443_200,
            4_102_444_800,
        ] {
            assert_eq!(rfc3339_to_unix(&rfc3339(t)), Ok(t), "{t}");
        }
        assert_eq!(rfc3339_to_unix("2026-11-23T07:19:18Z"), Ok(1_795_418_358));
        for bad in [
            "",
            "x",
            "2026-01-31",
            "2026-01-31T12:00:00",
            "2026-01-31 12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-31T24:00:00Z",
            "2026-01-31T12:60:00Z",
            "2026-01-31T12:00:61Z",
            "2026-01-31T12:00Z",
            "2026-01-31T12:00:00:00Z",
            "2026-01-31T1:00:00Z",
            "2026-01-31T12:-1:00Z",
            "2026-01-31T12:00:00+08:00",
            "2026-01-31T12:00:00.5Z",
        ] {
            assert!(rfc3339_to_unix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn years_after_keeps_the_date_and_time_of_day() {
        let t = date_to_unix("2026-03-05").unwrap() + 3_723;
        assert_eq!(rfc3339(years_after(t, 1)), "2027-03-05T01:02:03Z");
        assert_eq!(rfc3339(years_after(t, 5)), "2031-03-05T01:02:03Z");
        // A year over a February 29 has 366 days; five years, 1826 or 1827.
        let t = date_to_unix("2027-06-01").unwrap();
        assert_eq!(years_after(t, 1) - t, 366 * 86_400);
        assert_eq!(years_after(t, 5) - t, 1827 * 86_400);
        assert_eq!(
            years_after(date_to_unix("2029-06-01").unwrap(), 5),
            date_to_unix("2034-06-01").unwrap()
        );
        let leap = date_to_unix("2028-02-29").unwrap() + 60;
        assert_eq!(rfc3339(years_after(leap, 1)), "2029-02-28T00:01:00Z");
        assert_eq!(rfc3339(years_after(leap, 4)), "2032-02-29T00:01:00Z");
    }

    #[test]
    fn now_is_close_to_the_system_clock_without_an_offset() {
        if test_clock_warning().is_none() {
            let sys = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!((now_unix() - sys).abs() <= 2);
            assert!(now_rfc3339().ends_with('Z'));
        }
    }
}
