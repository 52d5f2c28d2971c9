//! What is stored under a cache key: the value plus what decides whether it may still be served —
//! the generations it was computed under, when it stops being fresh and how long it took to
//! compute (for XFetch's early refresh).

use super::CacheValue;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The stored bytes are one line of JSON header, a newline, then the value's own encoding (JSON
/// never holds a raw newline, so the first one ends the header). A hit parses the few bytes of
/// the header and hands the rest to the value's decoder: a value kept as ready-made JSON
/// ([`super::RawJson`]) is served without being parsed at all.
#[derive(Serialize, Deserialize)]
struct Header {
    /// Generation counters at the time the value was loaded, in `CacheKey::generations` order.
    g: Vec<u64>,
    /// Fresh until this Unix time (ms); afterwards it is only served stale, by policy.
    f: u64,
    /// How long the load took (µs): XFetch refreshes expensive values earlier.
    d: u64,
}

pub struct Envelope<T> {
    pub generations: Vec<u64>,
    pub fresh_until_ms: u64,
    pub load_micros: u64,
    pub value: T,
}

pub fn encode<T: CacheValue>(
    value: &T,
    generations: &[u64],
    fresh_for: Duration,
    load_time: Duration,
) -> Result<Vec<u8>, serde_json::Error> {
    let header = Header {
        g: generations.to_vec(),
        f: now_ms() + fresh_for.as_millis() as u64,
        d: load_time.as_micros() as u64,
    };
    let mut bytes = serde_json::to_vec(&header)?;
    bytes.push(b'\n');
    value.encode_into(&mut bytes)?;
    Ok(bytes)
}

/// `None` when the bytes are not an envelope of `T` (an older format, another type, corruption).
pub fn decode<T: CacheValue>(bytes: &[u8]) -> Option<Envelope<T>> {
    let split = bytes.iter().position(|byte| *byte == b'\n')?;
    let header: Header = serde_json::from_slice(&bytes[..split]).ok()?;
    Some(Envelope {
        generations: header.g,
        fresh_until_ms: header.f,
        load_micros: header.d,
        value: T::decode(&bytes[split + 1..])?,
    })
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// What a caller should do with a value of the right generation.
#[derive(Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Still fresh, but XFetch drew this caller to recompute it before it expires.
    RefreshEarly,
    Stale,
}

impl<T> Envelope<T> {
    /// XFetch (Vattani et al., VLDB 2015): recompute early when
    /// `now − δ·β·ln(rand) ≥ expiry`, so the probability rises as expiry nears, faster for
    /// values that are slow to compute, and one caller (not all) usually does it.
    pub fn freshness(&self, now_ms: u64, beta: f64) -> Freshness {
        if now_ms >= self.fresh_until_ms {
            return Freshness::Stale;
        }
        let draw: f64 = 1.0 - rand::rng().random::<f64>(); // (0, 1]
        let head_start_ms = (self.load_micros as f64 / 1000.0) * beta * -draw.ln();
        if now_ms as f64 + head_start_ms >= self.fresh_until_ms as f64 {
            Freshness::RefreshEarly
        } else {
            Freshness::Fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(fresh_in_ms: i64, load_ms: u64) -> (Envelope<()>, u64) {
        let now = 1_000_000_000;
        (
            Envelope {
                generations: vec![],
                fresh_until_ms: (now as i64 + fresh_in_ms) as u64,
                load_micros: load_ms * 1000,
                value: (),
            },
            now,
        )
    }

    #[test]
    fn round_trips_and_rejects_other_shapes() {
        let bytes = encode(
            &"x".to_string(),
            &[1, 2],
            Duration::from_secs(60),
            Duration::ZERO,
        )
        .unwrap();
        let decoded = decode::<String>(&bytes).unwrap();
        assert_eq!(decoded.value, "x");
        assert_eq!(decoded.generations, vec![1, 2]);
        assert!(decode::<u32>(&bytes).is_none(), "another type is a miss");
        assert!(decode::<String>(b"\"bare value\"").is_none());
        assert!(
            decode::<String>(br#"{"g":[1],"f":1,"d":1,"v":"the PR 1 format"}"#).is_none(),
            "an older envelope is a miss"
        );
        let raw = decode::<super::super::RawJson>(&bytes).unwrap();
        assert_eq!(raw.value.as_str(), "\"x\"", "served as stored");
    }

    #[test]
    fn past_its_freshness_a_value_is_stale() {
        let (value, now) = envelope(-1, 5);
        assert_eq!(value.freshness(now, 1.0), Freshness::Stale);
    }

    #[test]
    fn far_from_expiry_a_value_is_fresh_and_near_it_usually_refreshed() {
        let (far, now) = envelope(60_000, 5);
        assert!((0..1000).all(|_| far.freshness(now, 1.0) == Freshness::Fresh));
        // 1 ms before the expiry of a value that takes 50 ms to load, ln(rand) ≤ −0.02 on
        // ~98 % of draws: nearly every caller refreshes.
        let (near, now) = envelope(1, 50);
        let early = (0..1000)
            .filter(|_| near.freshness(now, 1.0) == Freshness::RefreshEarly)
            .count();
        assert!(early > 900, "{early}");
    }
}
