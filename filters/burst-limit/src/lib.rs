//! `burst-limit`: keeps at most `max` events per object and reason in each
//! time window, drops the rest, and reports how many it dropped on the next
//! event it keeps for that object and reason (`kwex.suppressed`). See
//! README.md for the config.
//!
//! Time is the documents' own `@timestamp`, not a clock: filters have no
//! clock (and replaying old events must give the same answer). State is per
//! instance (see the README): a best-effort limiter, not an exact one.

use std::collections::BTreeMap;
use std::rc::Rc;

use kwex_guest::serde_json::Value;
use kwex_guest::{Document, Error, Filter, Result, Verdict, export};
use serde::Deserialize;

/// The config.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Events kept per key and window. Default 5.
    pub max: u32,
    /// The window's length in seconds. Default 60.
    pub window_seconds: u32,
    /// Keys remembered at most; past this the least recently seen key is
    /// forgotten (with its suppressed count). Default 10 000, about 3 MiB.
    pub max_keys: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max: 5,
            window_seconds: 60,
            max_keys: 10_000,
        }
    }
}

/// What is remembered per key.
#[derive(Debug)]
struct Entry {
    /// `@timestamp` (seconds) of the event that opened the window.
    window_start: i64,
    /// Events kept in this window.
    kept: u32,
    /// Events dropped since the last kept one (across windows).
    suppressed: u64,
    /// When the key was last seen, as a position in `recency`.
    seen: u64,
}

/// The filter: its config and the per-key state.
pub struct BurstLimit {
    config: Config,
    entries: BTreeMap<Rc<str>, Entry>,
    /// Keys by when they were last seen, oldest first: what to evict.
    recency: BTreeMap<u64, Rc<str>>,
    /// Counts documents; the `seen` of the latest one.
    clock: u64,
}

impl BurstLimit {
    /// Number of keys remembered (for tests).
    pub fn keys(&self) -> usize {
        self.entries.len()
    }

    /// Finds or creates the entry of `key`, marking it as just seen and
    /// evicting the least recently seen key if the table is full.
    fn touch(&mut self, key: &str, now: i64) -> &mut Entry {
        self.clock += 1;
        let seen = self.clock;
        if !self.entries.contains_key(key) {
            while self.entries.len() >= self.config.max_keys {
                let Some((_, oldest)) = self.recency.pop_first() else {
                    break;
                };
                self.entries.remove(&oldest);
            }
        }
        let recency = &mut self.recency;
        let entry = self.entries.entry(Rc::from(key)).or_insert_with_key(|key| {
            recency.insert(seen, Rc::clone(key));
            Entry {
                window_start: now,
                kept: 0,
                suppressed: 0,
                seen,
            }
        });
        if entry.seen != seen {
            if let Some(key) = recency.remove(&entry.seen) {
                recency.insert(seen, key);
            }
            entry.seen = seen;
        }
        entry
    }
}

/// The key: the object (its uid, else kind/namespace/name) and the reason.
fn key(doc: &Document<'_>) -> String {
    let object = &doc.involved_object;
    let reason = doc.reason_str().unwrap_or_default();
    match object.uid.as_deref() {
        Some(uid) => format!("{uid}\n{reason}"),
        None => format!(
            "{}/{}/{}\n{reason}",
            object.kind.as_deref().unwrap_or_default(),
            object.namespace.as_deref().unwrap_or_default(),
            object.name.as_deref().unwrap_or_default(),
        ),
    }
}

impl Filter for BurstLimit {
    type Config = Config;

    fn init(config: Config) -> Result<Self> {
        if config.max == 0 {
            return Err(Error::msg(
                "config: max must be at least 1 (0 would drop everything)",
            ));
        }
        if config.window_seconds == 0 {
            return Err(Error::msg("config: windowSeconds must be at least 1"));
        }
        if config.max_keys == 0 {
            return Err(Error::msg("config: maxKeys must be at least 1"));
        }
        Ok(Self {
            config,
            entries: BTreeMap::new(),
            recency: BTreeMap::new(),
            clock: 0,
        })
    }

    fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
        // Without a time there is no window: let it through, uncounted.
        let Some(now) = doc.timestamp.as_deref().and_then(unix_seconds) else {
            return Ok(Verdict::Keep);
        };
        let (max, window) = (self.config.max, i64::from(self.config.window_seconds));
        let entry = self.touch(&key(doc), now);
        // A new window when this one has passed, or when time went back by
        // more than a window (a replay of older events).
        if now >= entry.window_start + window || now < entry.window_start - window {
            entry.window_start = now;
            entry.kept = 0;
        }
        if entry.kept >= max {
            entry.suppressed += 1;
            return Ok(Verdict::Drop);
        }
        entry.kept += 1;
        let suppressed = std::mem::take(&mut entry.suppressed);
        if suppressed == 0 {
            return Ok(Verdict::Keep);
        }

        let mut map = doc.to_map()?;
        let kwex = map
            .entry("kwex")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(kwex) = kwex {
            // An earlier burst-limit in the chain may have counted some too.
            let before = kwex.get("suppressed").and_then(Value::as_u64).unwrap_or(0);
            kwex.insert("suppressed".to_owned(), Value::from(before + suppressed));
        }
        Verdict::replace(&map)
    }
}

/// Seconds since 1970 of an RFC 3339 time such as `2026-11-07T11:12:33Z`,
/// `…33.123456Z` or `…33+01:00` (fractions are ignored).
fn unix_seconds(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = 19;
    if b.get(rest) == Some(&b'.') {
        rest += 1;
        while b.get(rest).is_some_and(u8::is_ascii_digit) {
            rest += 1;
        }
    }
    let offset = match b.get(rest) {
        Some(b'Z' | b'z') if rest + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if rest + 6 == b.len() && b[rest + 3] == b':' => {
            let minutes = num(rest + 1..rest + 3)? * 60 + num(rest + 4..rest + 6)?;
            if sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

export!(BurstLimit);

#[cfg(test)]
mod tests {
    use kwex_guest::serde_json::json;
    use kwex_guest::testing::{Harness, document, new_document};

    use super::*;

    /// A BackOff of pod `uid` at `2026-11-07T11:MM:SSZ`.
    fn event(uid: &str, minute: u32, second: u32) -> String {
        document(json!({
            "@timestamp": format!("2026-11-07T11:{minute:02}:{second:02}Z"),
            "involvedObject": {"uid": uid},
        }))
    }

    /// `k` keep, `d` drop, or the number of suppressed events reported.
    fn outcome(harness: &mut Harness<BurstLimit>, doc: &str) -> String {
        match harness.filter(doc).unwrap() {
            Verdict::Keep => "k".into(),
            Verdict::Drop => "d".into(),
            verdict => new_document(&verdict).unwrap()["kwex"]["suppressed"].to_string(),
        }
    }

    #[test]
    fn keeps_max_per_window_and_reports_the_suppressed_on_the_next_kept() {
        let mut f = Harness::<BurstLimit>::new(r#"{"max": 2, "windowSeconds": 60}"#).unwrap();
        let seen: Vec<String> = [
            (0, 0),
            (0, 10),
            (0, 20),
            (0, 30),
            (0, 59),
            (1, 0),
            (1, 1),
            (1, 2),
        ]
        .iter()
        .map(|&(m, s)| outcome(&mut f, &event("pod-a", m, s)))
        .collect();
        assert_eq!(seen, ["k", "k", "d", "d", "d", "3", "k", "d"]);
    }

    #[test]
    fn keys_are_per_object_and_reason() {
        let mut f = Harness::<BurstLimit>::new(r#"{"max": 1}"#).unwrap();
        assert_eq!(outcome(&mut f, &event("pod-a", 0, 0)), "k");
        assert_eq!(outcome(&mut f, &event("pod-b", 0, 0)), "k");
        assert_eq!(outcome(&mut f, &event("pod-a", 0, 1)), "d");
        let other_reason = document(json!({
            "@timestamp": "2026-11-07T11:00:02Z", "reason": "Unhealthy", "involvedObject": {"uid": "pod-a"},
        }));
        assert_eq!(outcome(&mut f, &other_reason), "k");
    }

    #[test]
    fn objects_without_uid_are_keyed_by_kind_namespace_and_name() {
        let mut f = Harness::<BurstLimit>::new(r#"{"max": 1}"#).unwrap();
        let node = |name: &str| {
            document(
                json!({"involvedObject": {"uid": null, "kind": "Node", "namespace": null, "name": name}}),
            )
        };
        assert_eq!(outcome(&mut f, &node("ip-10-0-1-1")), "k");
        assert_eq!(outcome(&mut f, &node("ip-10-0-1-2")), "k");
        assert_eq!(outcome(&mut f, &node("ip-10-0-1-1")), "d");
    }

    #[test]
    fn memory_is_bounded_by_evicting_the_least_recently_seen_key() {
        let mut f = Harness::<BurstLimit>::new(r#"{"max": 1, "maxKeys": 2}"#).unwrap();
        assert_eq!(outcome(&mut f, &event("a", 0, 0)), "k");
        assert_eq!(outcome(&mut f, &event("b", 0, 0)), "k");
        assert_eq!(outcome(&mut f, &event("a", 0, 1)), "d"); // a is now the most recent
        assert_eq!(outcome(&mut f, &event("c", 0, 2)), "k"); // evicts b
        assert_eq!(f.get().keys(), 2);
        assert_eq!(outcome(&mut f, &event("a", 0, 3)), "d"); // a was kept in the table
        assert_eq!(outcome(&mut f, &event("b", 0, 4)), "k"); // b was forgotten: a new window
    }

    #[test]
    fn an_earlier_suppressed_count_is_added_to() {
        let mut f = Harness::<BurstLimit>::new(r#"{"max": 1}"#).unwrap();
        outcome(&mut f, &event("a", 0, 0));
        outcome(&mut f, &event("a", 0, 1));
        let counted = document(
            json!({"@timestamp": "2026-11-07T11:05:00Z", "involvedObject": {"uid": "a"}, "kwex": {"suppressed": 4}}),
        );
        assert_eq!(outcome(&mut f, &counted), "5");
    }

    #[test]
    fn documents_without_a_time_are_kept_and_not_counted() {
        let mut f = Harness::<BurstLimit>::new(r#"{"max": 1}"#).unwrap();
        let untimed = document(json!({"@timestamp": null}));
        assert_eq!(outcome(&mut f, &untimed), "k");
        assert_eq!(outcome(&mut f, &untimed), "k");
        assert_eq!(f.get().keys(), 0);
    }

    #[test]
    fn parses_rfc3339_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2026-11-07T11:12:33Z"), Some(1_794_049_953));
        assert_eq!(
            unix_seconds("2026-11-07T11:12:33.123456Z"),
            Some(1_794_049_953)
        );
        assert_eq!(
            unix_seconds("2026-11-07T12:12:33+01:00"),
            Some(1_794_049_953)
        );
        assert_eq!(unix_seconds("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2026-11-07",
            "2026-11-07 11:12:33 +0000 UTC",
            "2026-13-07T11:12:33Z",
            "2026-11-07T11:12:33",
        ] {
            assert_eq!(unix_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn config_errors_are_refused() {
        let cases = [
            (r#"{"max": 0}"#, "config: max must be at least 1"),
            (
                r#"{"windowSeconds": 0}"#,
                "config: windowSeconds must be at least 1",
            ),
            (r#"{"maxKeys": 0}"#, "config: maxKeys must be at least 1"),
            (r#"{"max": -1}"#, "config: invalid value: integer `-1`"),
            (r#"{"window": 60}"#, "config: unknown field `window`"),
        ];
        for (config, expected) in cases {
            let err = Harness::<BurstLimit>::new(config).err().unwrap();
            assert!(err.message().starts_with(expected), "{config}: {err:?}");
        }
    }
}
