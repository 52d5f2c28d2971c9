//! `Cache::get_many_or_load` (the free-slot search's days) and `Cache::get_or_load_matching`
//! (its answers) against the real Redis.

use crate::cache::{POLICY, key, stored};
use pulso_tests::TestApp;
use serde_json::json;
use shared::cache::Prefetched;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::oneshot;

#[tokio::test]
async fn the_misses_of_a_batch_are_loaded_in_one_call_and_then_hit() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let keys = [key(&app, "day-1"), key(&app, "day-2"), key(&app, "day-3")];
    // The second key is already cached.
    let one = cache
        .get_many_or_load(POLICY, &keys[1..2], |_| async {
            Ok::<_, Infallible>(vec!["cached".to_string()])
        })
        .await
        .unwrap();
    assert_eq!(one, ["cached"]);

    let calls = Arc::new(AtomicUsize::new(0));
    let load = |calls: Arc<AtomicUsize>| {
        move |positions: Vec<usize>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(positions.iter().map(|at| format!("loaded {at}")).collect())
        }
    };
    let values = cache
        .get_many_or_load(POLICY, &keys, load(calls.clone()))
        .await
        .unwrap();
    assert_eq!(values, ["loaded 0", "cached", "loaded 2"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one load for both misses");
    assert_eq!(stored(&app, &keys[2]).await, Some(json!("loaded 2")));

    let again = cache
        .get_many_or_load(POLICY, &keys, load(calls.clone()))
        .await
        .unwrap();
    assert_eq!(again, values);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "every key hit");
}

#[tokio::test]
async fn a_key_invalidated_while_its_batch_loads_is_not_stored() {
    let app = TestApp::spawn().await;
    let cache = app.state.cache.clone();
    let keys = vec![key(&app, "monday"), key(&app, "tuesday")];
    let (loading_tx, loading_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let reader = {
        let (cache, keys) = (cache.clone(), keys.clone());
        tokio::spawn(async move {
            cache
                .get_many_or_load(POLICY, &keys, |_| async move {
                    let _ = loading_tx.send(());
                    let _ = release_rx.await;
                    Ok::<_, Infallible>(vec!["old monday".to_string(), "tuesday".to_string()])
                })
                .await
        })
    };
    loading_rx.await.expect("the batch started loading");
    // A booking on Monday commits and drops Monday while the batch is reading.
    cache.invalidate_all(POLICY, &keys[..1]).await;
    release_tx.send(()).expect("the batch is waiting");
    let served = reader.await.expect("reader task").expect("infallible");
    assert_eq!(served, ["old monday", "tuesday"]);
    assert_eq!(stored(&app, &keys[0]).await, None, "no stale Monday");
    assert_eq!(stored(&app, &keys[1]).await, Some(json!("tuesday")));
}

#[tokio::test]
async fn a_shared_key_serves_only_the_value_its_reader_asked_for() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let slot = &key(&app, "answer-slot");
    let ask = |question: &'static str| async move {
        cache
            .get_or_load_matching(
                (POLICY, slot),
                Prefetched::default(),
                &|stored: &(String, u32)| stored.0 == question,
                || async move { Ok::<_, Infallible>(Some((question.to_string(), rand_value()))) },
            )
            .await
            .unwrap()
            .expect("a value")
    };
    let first = ask("search a").await;
    assert_eq!(ask("search a").await, first, "the same question hits");
    let other = ask("search b").await;
    assert_eq!(
        other.0, "search b",
        "another question is a miss, never a's answer"
    );
    assert_eq!(
        stored(&app, slot).await,
        Some(json!(["search b", other.1])),
        "and takes the slot"
    );
    assert_ne!(
        ask("search a").await,
        first,
        "a was replaced, so it is computed again"
    );
}

fn rand_value() -> u32 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::SeqCst) as u32
}
