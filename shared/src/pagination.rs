//! Keyset pagination for list routes: a validated page request (`limit` within bounds, an
//! opaque `cursor` decoded to the last row's key) and the page answered with the next cursor.
//! A bad `limit` or `cursor` is a 400 naming the parameter.

use crate::http::ApiError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One page of a list and the opaque cursor of the next, if any.
#[derive(Debug, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
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

impl<K: DeserializeOwned> PageRequest<K> {
    pub fn new(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ApiError::BadRequest {
                detail: format!("limit must be between 1 and {MAX_PAGE_SIZE}."),
                field: Some("limit".into()),
            });
        }
        let after = cursor
            .map(|cursor| {
                URL_SAFE_NO_PAD
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .ok_or_else(|| ApiError::BadRequest {
                        detail: "cursor is not one this API returned.".into(),
                        field: Some("cursor".into()),
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

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| ("k".to_string(), *n));
        assert_eq!(page.items, vec![1, 2]);
        let cursor = page.next_cursor.expect("more rows");
        let request: PageRequest<(String, i32)> = PageRequest::new(None, Some(&cursor)).unwrap();
        assert_eq!(request.after, Some(("k".to_string(), 2)));
        assert!(PageRequest::<(String, i32)>::new(None, Some("not-a-cursor")).is_err());
        assert!(PageRequest::<(String, i32)>::new(Some(0), None).is_err());
        assert!(PageRequest::<(String, i32)>::new(Some(MAX_PAGE_SIZE + 1), None).is_err());
        let last = Page::from_rows(vec![1, 2], 2, |n| *n);
        assert!(last.next_cursor.is_none());
    }
}
