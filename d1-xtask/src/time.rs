//! Instants as people say them and as D1 wants them, on jiff (time zones, spans and
//! strict validation: day 32 or hour 25 is an error, never a roll-over).

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, Zoned};

pub(crate) fn unix_now() -> i64 {
    Timestamp::now().as_second()
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `2026-11-22 10:00:00`, the form SQLite's CURRENT_TIMESTAMP uses (UTC).
pub(crate) fn format_utc(secs: i64) -> String {
    at(secs).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// The inverse of `format_utc`.
pub(crate) fn parse_utc(s: &str) -> Option<i64> {
    let dt: DateTime = s.parse().ok()?;
    dt.to_zoned(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// `20261122T100000Z`: sortable and safe in file names (backup ids and paths).
pub(crate) fn format_compact(secs: i64) -> String {
    at(secs).strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// `2026-11-22T10:00:00Z`.
pub(crate) fn format_rfc3339(secs: i64) -> String {
    at(secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `2026-11-22 11:00:00 CET (+01:00)`: an instant in `zone`.
pub(crate) fn format_in(secs: i64, zone: &TimeZone) -> String {
    at(secs)
        .to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z (%:z)")
        .to_string()
}

/// `2026-11-22 10:00:00 UTC = 2026-11-22 11:00:00 CET (+01:00) Europe/Paris`: how a
/// resolved instant is shown before anything acts on it.
pub(crate) fn describe(secs: i64, zone: &TimeZone) -> String {
    let name = zone.iana_name().unwrap_or("local time");
    format!(
        "{} UTC = {} {name}",
        format_utc(secs),
        format_in(secs, zone)
    )
}

/// The zone times without one are read in: `--tz <IANA name>`, else `TZ`, else the
/// system's zone.
pub(crate) fn zone(tz: Option<&str>) -> Result<TimeZone, String> {
    match tz {
        Some(name) => TimeZone::get(name).map_err(|e| {
            format!("--tz `{name}` is not a time zone this machine knows ({e}); use an IANA name such as Europe/Paris or UTC")
        }),
        None => system_zone(),
    }
}

/// The largest time zone file read from `TZ` (real ones are a few kB).
const TZ_FILE_LIMIT: u64 = 256 * 1024;

/// The zone of `TZ` when it is set, else the system's (`/etc/localtime`; UTC where a
/// machine has none, as POSIX says). `TZ` is checked before anything reads it: a path must
/// name a regular file of at most 256 kB (never a device or a pipe, which would hang or
/// fill memory), a name must be one this machine knows (IANA, or a POSIX rule such as
/// `EST5EDT`); anything else is an error, never a silent UTC.
fn system_zone() -> Result<TimeZone, String> {
    let Some(raw) = std::env::var_os("TZ") else {
        return Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC));
    };
    let refuse = |why: String| {
        format!(
            "TZ={raw:?} {why}: unset TZ, or set an IANA name such as Europe/Paris (--tz overrides it)"
        )
    };
    let Some(text) = raw.to_str() else {
        return Err(refuse("is not UTF-8".into()));
    };
    let name = text.strip_prefix(':').unwrap_or(text);
    if name.is_empty() {
        return Ok(TimeZone::UTC);
    }
    if name.starts_with('/') {
        let meta = std::fs::metadata(name)
            .map_err(|e| refuse(format!("names a file that cannot be read ({e})")))?;
        if !meta.is_file() {
            return Err(refuse("names something that is not a regular file".into()));
        }
        if meta.len() > TZ_FILE_LIMIT {
            return Err(refuse(format!(
                "names a file of {} bytes; time zone files are a few kB",
                meta.len()
            )));
        }
        let mut bytes = Vec::new();
        use std::io::Read;
        std::fs::File::open(name)
            .and_then(|f| f.take(TZ_FILE_LIMIT).read_to_end(&mut bytes))
            .map_err(|e| refuse(format!("names a file that cannot be read ({e})")))?;
        return TimeZone::tzif(name, &bytes)
            .map_err(|e| refuse(format!("names a file that is not a time zone file ({e})")));
    }
    TimeZone::get(name)
        .or_else(|_| TimeZone::posix(name))
        .map_err(|e| refuse(format!("is not a time zone this machine knows ({e})")))
}

/// The forms `--timestamp` takes, for error messages and --help.
pub(crate) const FORMS: &str =
    "RFC 3339 (2026-11-21T15:00:00Z, 2026-11-21T16:00:00+01:00), Unix seconds \
(1795301734), `<span> ago` (5 minutes ago, 2h ago, 1 hour 30 minutes ago), `yesterday` or `today` \
with an optional `[at] H[:MM] [am|pm]` (yesterday at 3 PM, today 09:30), or a date and time \
without a zone, read in the local zone or --tz (2026-11-21 15:00)";

/// Reads `raw` as an instant, relative to `now` (whose zone is the local one).
pub(crate) fn parse_when(raw: &str, now: &Zoned) -> Result<Timestamp, String> {
    let s = raw.trim();
    let refuse = || format!("`{raw}` is not a time the xtask reads: use {FORMS}");
    if s.is_empty() {
        return Err(refuse());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = s.parse().map_err(|_| refuse())?;
        // 13 digits and more are milliseconds, as wrangler reads them.
        let secs = if s.len() >= 13 { n / 1000 } else { n };
        return Timestamp::from_second(secs).map_err(|e| format!("`{raw}`: {e}"));
    }
    let lower = s.to_ascii_lowercase();
    if let Some(span) = lower.strip_suffix("ago") {
        let span: Span = span.trim().parse().map_err(|e| {
            format!(
                "`{raw}`: the span before `ago` is not one ({e}); {}",
                refuse()
            )
        })?;
        if span.is_negative() || span.is_zero() {
            return Err(format!("`{raw}`: the span before `ago` must be positive"));
        }
        return now
            .checked_sub(span)
            .map(|z| z.timestamp())
            .map_err(|e| format!("`{raw}`: {e}"));
    }
    for (word, back) in [("yesterday", 1), ("today", 0)] {
        if let Some(rest) = lower.strip_prefix(word) {
            let time = clock_time(rest).ok_or_else(refuse)?;
            let date = now
                .date()
                .checked_sub(Span::new().days(back))
                .map_err(|e| format!("`{raw}`: {e}"))?;
            return in_zone(date.to_datetime(time), now.time_zone(), raw);
        }
    }
    if let Ok(ts) = s.parse::<Timestamp>() {
        return Ok(ts);
    }
    // Without an offset: a wall-clock time in the local zone (or --tz).
    if s.contains(['+', 'Z', 'z']) || s.get(10..).is_some_and(|t| t.contains('-')) {
        return Err(refuse());
    }
    if let Ok(dt) = s.parse::<DateTime>() {
        return in_zone(dt, now.time_zone(), raw);
    }
    if let Ok(date) = s.parse::<Date>() {
        return in_zone(date.to_datetime(Time::midnight()), now.time_zone(), raw);
    }
    Err(refuse())
}

/// A wall-clock time in `zone`. In a gap (the hour skipped when clocks go forward) the
/// later reading is taken; in a fold (the hour repeated) the earlier: jiff's "compatible"
/// rule, as RFC 5545 and Temporal do.
fn in_zone(dt: DateTime, zone: &TimeZone, raw: &str) -> Result<Timestamp, String> {
    dt.to_zoned(zone.clone())
        .map(|z| z.timestamp())
        .map_err(|e| format!("`{raw}`: {e}"))
}

/// `""` (midnight), `[at] H[:MM] [am|pm]`: the time after `yesterday` / `today`.
fn clock_time(rest: &str) -> Option<Time> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Some(Time::midnight());
    }
    let rest = rest.strip_prefix("at").map_or(rest, str::trim_start);
    let (clock, meridiem) = if let Some(c) = rest.strip_suffix("am") {
        (c.trim_end(), Some(false))
    } else if let Some(c) = rest.strip_suffix("pm") {
        (c.trim_end(), Some(true))
    } else {
        (rest, None)
    };
    let (h, m) = match clock.split_once(':') {
        Some((h, m)) if m.len() == 2 => (h, m),
        Some(_) => return None,
        None => (clock, "00"),
    };
    if h.is_empty() || h.len() > 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (mut h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    if let Some(pm) = meridiem {
        if !(1..=12).contains(&h) {
            return None;
        }
        h = match (h, pm) {
            (12, false) => 0,
            (12, true) => 12,
            (h, true) => h + 12,
            (h, false) => h,
        };
    }
    Time::new(h, m, 0, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22 10:00:00 in Paris (09:00 UTC), a fixed clock.
    fn paris_now() -> Zoned {
        "2026-11-22T10:00:00+01:00[Europe/Paris]".parse().unwrap()
    }

    fn utc(raw: &str, now: &Zoned) -> String {
        format_rfc3339(parse_when(raw, now).unwrap().as_second())
    }

    #[test]
    fn every_accepted_form() {
        let now = paris_now();
        assert_eq!(utc("2026-11-21T15:00:00Z", &now), "2026-11-21T15:00:00Z");
        assert_eq!(
            utc("2026-11-21T16:00:00+01:00", &now),
            "2026-11-21T15:00:00Z"
        );
        assert_eq!(utc("1795301734", &now), "2026-11-21T22:55:34Z");
        assert_eq!(utc("1795301734000", &now), "2026-11-21T22:55:34Z");
        assert_eq!(utc("5 minutes ago", &now), "2026-11-22T08:55:00Z");
        assert_eq!(utc("2h ago", &now), "2026-11-22T07:00:00Z");
        assert_eq!(utc("1 hour 30 minutes ago", &now), "2026-11-22T07:30:00Z");
        assert_eq!(utc("45 seconds ago", &now), "2026-11-22T08:59:15Z");
        assert_eq!(utc("yesterday at 3 PM", &now), "2026-11-21T14:00:00Z");
        assert_eq!(utc("Yesterday 3pm", &now), "2026-11-21T14:00:00Z");
        assert_eq!(utc("yesterday at 12 am", &now), "2026-11-20T23:00:00Z");
        assert_eq!(utc("today 09:30", &now), "2026-11-22T08:30:00Z");
        assert_eq!(utc("today", &now), "2026-11-21T23:00:00Z");
        assert_eq!(utc("2026-11-21 15:00", &now), "2026-11-21T14:00:00Z");
        assert_eq!(utc("2026-11-21T15:00:30", &now), "2026-11-21T14:00:30Z");
    }

    #[test]
    fn daylight_saving_changes() {
        // Clocks went back in Paris on 2026-10-25 at 03:00 (CEST -> CET): "yesterday" is a
        // calendar day of 25 hours, and a span of days is counted in days, not 24 hours.
        let now: Zoned = "2026-10-26T12:00:00+01:00[Europe/Paris]".parse().unwrap();
        assert_eq!(utc("yesterday at 12:00", &now), "2026-10-25T11:00:00Z");
        assert_eq!(utc("2 days ago", &now), "2026-10-24T10:00:00Z");
        assert_eq!(utc("48 hours ago", &now), "2026-10-24T11:00:00Z");
        // The repeated hour takes its first reading; the skipped hour (2026-03-29 02:30
        // does not exist in Paris) the later one.
        assert_eq!(utc("2026-10-25 02:30", &now), "2026-10-25T00:30:00Z");
        assert_eq!(utc("2026-03-29 02:30", &now), "2026-03-29T01:30:00Z");
    }

    #[test]
    fn refused_forms_and_the_old_bugs() {
        let now = paris_now();
        for bad in [
            "",
            "last tuesday",
            "2026-11-32T10:00:00Z",
            "2026-11-21T25:00:00Z",
            "2026-11-21 25:00",
            "2026-13-01 10:00",
            "2025-11-22T00:19:28+0100x",
            "2026-11-21T10:00:00+ä1:00",
            "2026-11-21T10:00:00−01:00",
            "yesterday at 13 pm",
            "today at 9:5",
            "today at noon",
            "-5 minutes ago",
            "0 minutes ago",
            "ago",
            "12ab",
        ] {
            let e = parse_when(bad, &now).unwrap_err();
            assert!(e.contains(bad.trim()) || bad.is_empty(), "{bad}: {e}");
        }
        assert!(parse_when("soon", &now)
            .unwrap_err()
            .contains("5 minutes ago"));
    }

    #[test]
    fn formats() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(1_763_770_768), "2025-11-22 00:19:28");
        assert_eq!(format_compact(1_763_770_768), "20251122T001928Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(parse_utc("2025-11-22 00:19:28"), Some(1_763_770_768));
        let paris = TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(
            describe(1_795_301_734, &paris),
            "2026-11-21 22:55:34 UTC = 2026-11-21 23:55:34 CET (+01:00) Europe/Paris"
        );
        assert!(zone(Some("Mars/Olympus")).unwrap_err().contains("IANA"));
    }
}
