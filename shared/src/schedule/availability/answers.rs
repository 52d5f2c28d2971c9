//! A search's whole answer, cached as the JSON sent (`cache::AVAILABILITY_ANSWERS`), so asking
//! the same question again within the minute costs one Redis read and no computation.
//!
//! - **The question** is the query as sent plus the minute it is asked in: the answer's free time
//!   and starts run from the next whole minute (`since`), so it holds for that minute only. The
//!   defaults a query leaves out (today, the clinic's default length, the procedure's minutes)
//!   are resolved the same way by every caller of that minute; a change of the clinic's zone,
//!   grid or default length bumps its schedule generation, which every answer carries.
//! - **Bounded per clinic**: a clinic has [`SLOTS`] answer keys; a question goes to the one its
//!   hash picks, and the stored answer is used only if it was computed for the same question
//!   (otherwise it is a miss, and the new answer takes the slot). However many distinct
//!   questions a clinic asks, it holds at most `SLOTS` answers in Redis.
//! - **Never stale**: a booking, reschedule or cancellation deletes every slot of its clinic
//!   with the days it touches (`super::super::forget`), and the deletion cancels a fill in
//!   flight (its lease), like any cached value.

use crate::cache::{AVAILABILITY_ANSWERS, CacheValue, Prefetched, RawJson};
use crate::http::ApiError;
use crate::ids::ClinicId;
use crate::keys::CacheKey;
use crate::state::AppState;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Answers cached per clinic at most.
pub const SLOTS: u64 = 8;

/// The first whole minute after `now`: free time and starts are offered from it on.
pub(in crate::schedule) fn since(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now) + TimeDelta::minutes(1)
}

/// An answer and the question it answers (one line of text: the query and its minute).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Answer {
    question: String,
    json: RawJson,
}

impl CacheValue for Answer {
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.reserve(self.question.len() + 1 + self.json.as_str().len());
        out.extend_from_slice(self.question.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.json.as_str().as_bytes());
        Ok(())
    }

    fn decode(payload: &[u8]) -> Option<Self> {
        let split = payload.iter().position(|byte| *byte == b'\n')?;
        Some(Self {
            question: String::from_utf8(payload[..split].to_vec()).ok()?,
            json: RawJson::decode(&payload[split + 1..])?,
        })
    }
}

/// Where the answer to `question` is kept.
pub(super) fn key(state: &AppState, clinic: ClinicId, question: &str) -> CacheKey {
    state.keys.availability_answer(clinic, slot(question))
}

/// The answer to `question` (which names its minute and has no newline) as JSON: the cached
/// one (from what the request gate `prefetched`, if it read it), or `compute`d and cached in
/// the slot the question hashes to.
pub(super) async fn answer<T, F, Fut>(
    state: &AppState,
    (clinic, question): (ClinicId, String),
    prefetched: Prefetched,
    compute: F,
) -> Result<RawJson, ApiError>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    debug_assert!(!question.contains('\n'));
    let key = key(state, clinic, &question);
    let asked = question.clone();
    let found = state
        .cache
        .get_or_load_matching(
            (AVAILABILITY_ANSWERS, &key),
            prefetched,
            &|stored: &Answer| stored.question == asked,
            || async move {
                let json = RawJson::to_json(&compute().await?).map_err(ApiError::internal)?;
                Ok::<_, ApiError>(Some(Answer { question, json }))
            },
        )
        .await?;
    found.map(|answer| answer.json).ok_or_else(|| {
        ApiError::internal(std::io::Error::other("a computed answer came back empty"))
    })
}

/// The slot a question takes: the same in every process built from the same code.
fn slot(question: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    question.hash(&mut hasher);
    hasher.finish() % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn answers_round_trip_and_keep_their_question() {
        let answer = Answer {
            question: "search from=2026-12-07".into(),
            json: RawJson::to_json(&serde_json::json!({"a": "b\nc"})).expect("json"),
        };
        let bytes = answer.encode().expect("encode");
        assert_eq!(Answer::decode(&bytes), Some(answer));
        assert_eq!(Answer::decode(b"no newline"), None);
    }

    #[test]
    fn since_is_the_next_whole_minute() {
        let at = |s| Utc.with_ymd_and_hms(2026, 12, 7, 10, 45, s).unwrap();
        assert_eq!(since(at(0)), at(0) + TimeDelta::minutes(1));
        assert_eq!(since(at(59)), at(0) + TimeDelta::minutes(1));
    }

    #[test]
    fn questions_spread_over_the_slots() {
        let used: std::collections::BTreeSet<u64> = (0..200)
            .map(|i| slot(&format!("search duration={i}")))
            .collect();
        assert_eq!(used.len() as u64, SLOTS);
    }
}
