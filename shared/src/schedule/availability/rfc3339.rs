//! Instants written as chrono writes them (`2026-12-07T09:30:00Z`), several times faster: a
//! large clinic's fortnight is some 12,000 starts, and chrono's `Display` goes through the
//! formatter one character at a time. Whole seconds of the years 1000–9999 are written here;
//! anything else is left to chrono, so the text is always the same.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `#[serde(serialize_with = "rfc3339::one")]`.
pub(super) fn one<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    match whole_second(at) {
        Some(text) => serializer.serialize_str(as_str(&text)),
        None => at.serialize(serializer),
    }
}

/// `#[serde(serialize_with = "rfc3339::many")]`.
pub(super) fn many<S: Serializer>(
    list: &[DateTime<Utc>],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(list.iter().map(Written))
}

struct Written<'a>(&'a DateTime<Utc>);

impl Serialize for Written<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        one(self.0, serializer)
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, when `at` is a whole second of a four-digit year.
fn whole_second(at: &DateTime<Utc>) -> Option<[u8; 20]> {
    let wall = at.naive_utc();
    let year = wall.year();
    if at.timestamp_subsec_nanos() != 0 || !(1000..=9999).contains(&year) {
        return None;
    }
    let mut text = *b"0000-00-00T00:00:00Z";
    let year = year as u32;
    two(&mut text[0..2], year / 100);
    two(&mut text[2..4], year % 100);
    two(&mut text[5..7], wall.month());
    two(&mut text[8..10], wall.day());
    two(&mut text[11..13], wall.hour());
    two(&mut text[14..16], wall.minute());
    two(&mut text[17..19], wall.second());
    Some(text)
}

fn two(into: &mut [u8], value: u32) {
    into[0] = b'0' + (value / 10) as u8;
    into[1] = b'0' + (value % 10) as u8;
}

fn as_str(text: &[u8; 20]) -> &str {
    // Only ASCII digits and separators are ever written.
    std::str::from_utf8(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Both {
        #[serde(serialize_with = "one")]
        one: DateTime<Utc>,
        #[serde(serialize_with = "many")]
        many: Vec<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chrono {
        one: DateTime<Utc>,
        many: Vec<DateTime<Utc>>,
    }

    proptest! {
        #[test]
        fn writes_what_chrono_writes(
            seconds in -80_000_000_000i64..300_000_000_000i64,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
        ) {
            let at = DateTime::from_timestamp(seconds, nanos).expect("in chrono's range");
            let many = vec![at, at + chrono::Duration::minutes(5)];
            let ours = serde_json::to_string(&Both { one: at, many: many.clone() }).unwrap();
            let theirs = serde_json::to_string(&Chrono { one: at, many }).unwrap();
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn a_start_reads_as_usual() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(as_str(&whole_second(&at).unwrap()), "2026-12-07T09:30:00Z");
    }
}
