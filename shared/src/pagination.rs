//! Keyset pagination for list routes: a validated page request (`limit` within bounds, an
//! opaque `cursor` decoded to the last row's key) and the page answered with the next cursor.
//! A bad `limit` or `cursor` is a 400 naming the parameter.
//!
//! A cursor is only base64 JSON, so a client can forge one. Its decoded key is checked to be one
//! the API could have written ([`CursorKey`]): a time PostgreSQL can hold, text without NUL, so
//! a forged cursor is a 400 and never reaches the database as a value it refuses (a 500).

use crate::ids::{AppointmentId, JobId, PatientId, UserId, WaitingListEntryId, XrayId};
use crate::input::InputError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One page of a list and the opaque cursor of the next, if any.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass it as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

/// A validated page request: a size within bounds and the decoded keyset position.
#[derive(Debug)]
pub struct PageRequest<K> {
    pub limit: u32,
    pub after: Option<K>,
}

/// A row key a cursor may carry: decoded from what a client sent, so it must say whether it is
/// one the API could have written.
pub trait CursorKey: DeserializeOwned {
    fn plausible(&self) -> bool;
}

/// PostgreSQL's `timestamptz` reaches 294276 AD, chrono's `DateTime` far beyond; no row of
/// Pulso's is outside these years.
impl CursorKey for DateTime<Utc> {
    fn plausible(&self) -> bool {
        (1..=9999).contains(&self.year())
    }
}

/// A row's sequence number (the audit trail's ids): positive.
impl CursorKey for i64 {
    fn plausible(&self) -> bool {
        *self > 0
    }
}

/// A sort key of text (a patient's folded name): what `text::search_key` writes.
impl CursorKey for String {
    fn plausible(&self) -> bool {
        self.chars().count() <= 1_000 && !self.chars().any(char::is_control)
    }
}

macro_rules! any_id_is_plausible {
    ($($id:ty),*) => {$(
        impl CursorKey for $id {
            fn plausible(&self) -> bool {
                true
            }
        }
    )*};
}
any_id_is_plausible!(
    AppointmentId,
    JobId,
    PatientId,
    UserId,
    WaitingListEntryId,
    XrayId
);

impl<A: CursorKey, B: CursorKey> CursorKey for (A, B) {
    fn plausible(&self) -> bool {
        self.0.plausible() && self.1.plausible()
    }
}

impl<K: CursorKey> PageRequest<K> {
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, InputError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(InputError::malformed(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE_SIZE}."),
            ));
        }
        let after = cursor
            .map(|cursor| {
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<K>(&bytes).ok())
                    .filter(CursorKey::plausible)
                    .ok_or_else(|| {
                        InputError::malformed("cursor", "cursor is not one this API returned.")
                    })
            })
            .transpose()?;
        Ok(Self { limit, after })
    }

    /// Fetch one row more than the limit to know whether a next page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows; the keyset position of the last kept row
    /// becomes the next cursor.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, limit: u32, key_of: impl Fn(&T) -> K) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = has_more
            .then(|| rows.last().map(|row| encode_cursor(&key_of(row))))
            .flatten();
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

fn encode_cursor<K: Serialize>(key: &K) -> String {
    // Serializing plain keys (strings, timestamps, uuids) cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Key = (String, PatientId);

    fn forged(json: &str) -> Result<PageRequest<Key>, InputError> {
        PageRequest::new(None, Some(&URL_SAFE_NO_PAD.encode(json)))
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let id = PatientId::new_random();
        let page = Page::from_rows(vec![1, 2, 3], 2, |_| ("k".to_string(), id));
        assert_eq!(page.items, vec![1, 2]);
        let cursor = page.next_cursor.expect("more rows");
        let request: PageRequest<Key> = PageRequest::new(None, Some(&cursor)).unwrap();
        assert_eq!(request.after, Some(("k".to_string(), id)));
        assert!(PageRequest::<Key>::new(None, Some("not-a-cursor")).is_err());
        assert!(PageRequest::<Key>::new(Some(0), None).is_err());
        assert!(PageRequest::<Key>::new(Some(MAX_PAGE_SIZE + 1), None).is_err());
        let last = Page::from_rows(vec![1, 2], 2, |n| *n);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn forged_cursors_are_refused_before_the_database_sees_them() {
        let id = PatientId::new_random();
        let refused = Err(InputError::malformed(
            "cursor",
            "cursor is not one this API returned.",
        ));
        assert_eq!(
            forged(&format!(r#"["a\u0000b", "{id}"]"#)).map(|r| r.after),
            refused
        );
        let times = |json: &str| {
            PageRequest::<(DateTime<Utc>, PatientId)>::new(
                None,
                Some(&URL_SAFE_NO_PAD.encode(json)),
            )
            .map(|request| request.after.map(|after| after.0.year()))
        };
        for time in [
            "-100000-01-01T00:00:00Z",
            "+300000-01-01T00:00:00Z",
            "0000-12-31T00:00:00Z",
        ] {
            assert!(times(&format!(r#"["{time}", "{id}"]"#)).is_err(), "{time}");
        }
        assert_eq!(
            times(&format!(r#"["2026-12-04T10:00:00Z", "{id}"]"#)),
            Ok(Some(2026))
        );
    }
}
