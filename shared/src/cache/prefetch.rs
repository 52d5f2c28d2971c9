//! A cached value's keys read ahead of its handler, in the request gate's own Redis call
//! (`shared::access`): a handler that will read one value first names it before it is let in,
//! the gate reads the value and its generation counters with the caller's standing, in the
//! round trip of its rate-limit script, and the read that follows uses what came back instead of
//! a round trip of its own. A cache hit then costs one round trip, not two.
//!
//! What was read is as it was when the gate ran, microseconds before the handler: a value
//! invalidated in between is served as any read that raced the invalidation would have served
//! it. The keys must share the clinic's hash tag (one slot, one MGET); a value that depends on
//! another slot (a catalog view, on the global catalog's generation) is read on its own.

use crate::ids::ClinicId;
use crate::keys::CacheKey;

/// The prefetched keys of one cached value (its value key and what was read), or nothing.
#[derive(Debug, Default)]
pub struct Prefetched(Option<(String, Read)>);

/// A cached value and its generation counters, as one read found them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Read {
    pub value: Option<Vec<u8>>,
    /// In the key's order; `None` where the counter did not exist.
    pub counters: Vec<Option<u64>>,
}

impl Prefetched {
    /// The keys to read for `key`, in the order [`Prefetched::from_replies`] takes their values;
    /// none when they do not all share `clinic`'s slot.
    pub fn keys(key: &CacheKey, clinic: ClinicId) -> Vec<String> {
        let tag = format!("{{{clinic}}}");
        let mut keys = Vec::with_capacity(1 + key.generations.len());
        keys.push(key.value.clone());
        keys.extend(key.generations.iter().cloned());
        if keys.iter().all(|key| key.contains(&tag)) {
            keys
        } else {
            Vec::new()
        }
    }

    /// What was read for `key` (the values of [`Prefetched::keys`], in order). Nothing when the
    /// replies do not match the keys or a counter is not a number: the read then asks Redis
    /// itself and meets whatever is wrong there.
    pub fn from_replies(key: &CacheKey, mut replies: Vec<Option<Vec<u8>>>) -> Self {
        if replies.len() != 1 + key.generations.len() {
            return Self::default();
        }
        let counters = replies
            .split_off(1)
            .into_iter()
            .map(|counter| match counter {
                None => Some(None),
                Some(bytes) => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .map(Some),
            })
            .collect::<Option<Vec<_>>>();
        match (counters, replies.pop()) {
            (Some(counters), Some(value)) => {
                Self(Some((key.value.clone(), Read { value, counters })))
            }
            _ => Self::default(),
        }
    }

    /// What was read for `key`, if this is `key`'s.
    pub(super) fn take_for(self, key: &CacheKey) -> Option<Read> {
        self.0
            .filter(|(value_key, _)| *value_key == key.value)
            .map(|(_, read)| read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PatientId;
    use crate::keys::Keys;

    #[test]
    fn only_keys_in_the_clinics_slot_are_read_ahead() {
        let keys = Keys::new("t");
        let clinic = ClinicId::new_random();
        let profile = keys.patient_profile(clinic, PatientId::new_random());
        assert_eq!(
            Prefetched::keys(&profile, clinic),
            vec![profile.value.clone(), profile.generations[0].clone()]
        );
        // A catalog view also depends on the global catalog's counter, in another slot.
        assert!(Prefetched::keys(&keys.catalog_view(clinic, "procedure"), clinic).is_empty());
        // Another clinic's value is never read on this caller's behalf.
        assert!(Prefetched::keys(&profile, ClinicId::new_random()).is_empty());
    }

    #[test]
    fn replies_that_do_not_fit_the_key_are_nothing() {
        let keys = Keys::new("t");
        let clinic = ClinicId::new_random();
        let key = keys.dashboard(clinic);
        let read = |replies: Vec<Option<&[u8]>>| {
            let replies = replies.into_iter().map(|r| r.map(<[u8]>::to_vec)).collect();
            Prefetched::from_replies(&key, replies).take_for(&key)
        };
        assert_eq!(
            read(vec![Some(b"v"), Some(b"42")]),
            Some(Read {
                value: Some(b"v".to_vec()),
                counters: vec![Some(42)]
            })
        );
        assert_eq!(
            read(vec![None, None]),
            Some(Read {
                value: None,
                counters: vec![None]
            })
        );
        assert_eq!(read(vec![Some(b"v")]), None, "a reply short");
        assert_eq!(read(vec![Some(b"v"), Some(b"x")]), None, "not a counter");
        let other = keys.dashboard(ClinicId::new_random());
        let replies = vec![Some(b"v".to_vec()), Some(b"1".to_vec())];
        assert_eq!(
            Prefetched::from_replies(&key, replies).take_for(&other),
            None
        );
    }
}
