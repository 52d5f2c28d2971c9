//! `shared::cache` against the real Redis: no stale set after an invalidation, one load per
//! missing key however many callers miss it, and recovery when a loader dies or fails.

use http::Method;
use pulso_tests::{TestApp, TestOptions};
use redis::AsyncCommands;
use serde_json::json;
use shared::auth::Role;
use shared::cache::CachePolicy;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

const POLICY: CachePolicy = CachePolicy {
    name: "test",
    ttl: Duration::from_secs(60),
    lease: Duration::from_secs(3),
    max_wait: Duration::from_secs(2),
};

fn key(app: &TestApp, name: &str) -> String {
    format!(
        "{}:test:{{{}}}:{name}:v1",
        app.redis_prefix, app.clinic_a.id
    )
}

#[tokio::test]
async fn a_reader_that_loaded_before_an_invalidation_never_stores_its_stale_value() {
    let app = TestApp::spawn().await;
    let cache = app.state.cache.clone();
    let key = key(&app, "profile");
    let (loading_tx, loading_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();

    // The reader misses, takes the lease and reads the old row... then stalls.
    let reader = {
        let cache = cache.clone();
        let key = key.clone();
        tokio::spawn(async move {
            cache
                .get_or_load(POLICY, &key, || async move {
                    let _ = loading_tx.send(());
                    let _ = release_rx.await;
                    Ok::<_, Infallible>(Some("old".to_string()))
                })
                .await
        })
    };
    loading_rx.await.expect("the reader started loading");
    // ...meanwhile a writer commits the new row and invalidates.
    cache.invalidate(POLICY, &key).await;
    release_tx.send(()).expect("reader waiting");
    let served = reader.await.expect("reader task").expect("infallible");
    assert_eq!(
        served.as_deref(),
        Some("old"),
        "the reader answers with what it read"
    );

    let mut redis = app.redis().await;
    let stored: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(
        stored, None,
        "the stale value must not be stored after the invalidation"
    );

    // The next reader loads the new row and caches it.
    let fresh = cache
        .get_or_load(POLICY, &key, || async {
            Ok::<_, Infallible>(Some("new".to_string()))
        })
        .await
        .unwrap();
    assert_eq!(fresh.as_deref(), Some("new"));
    let stored: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(stored.as_deref(), Some("\"new\""));
}

#[tokio::test]
async fn a_hundred_concurrent_misses_load_once() {
    let app = TestApp::spawn().await;
    let key = key(&app, "hot");
    let loads = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let cache = app.state.cache.clone();
            let key = key.clone();
            let loads = loads.clone();
            tokio::spawn(async move {
                cache
                    .get_or_load(POLICY, &key, || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<_, Infallible>(Some(42_u32))
                    })
                    .await
            })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap().unwrap(), Some(42));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1, "exactly one caller loaded");
}

#[tokio::test]
async fn waiters_take_over_when_the_loader_died() {
    let app = TestApp::spawn().await;
    let key = key(&app, "orphan");
    let mut redis = app.redis().await;
    // A loader took the lease and vanished (a frozen or killed Lambda): its lease expires.
    let _: () = redis
        .pset_ex(shared::keys::Keys::lease(&key), "dead-loader", 200)
        .await
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = loads.clone();
    let value = app
        .state
        .cache
        .get_or_load(POLICY, &key, || async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Some("recovered".to_string()))
        })
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("recovered"));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let stored: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("\"recovered\""),
        "the new lease holder filled the key"
    );

    // A lease that outlives the wait: the caller is served from the loader, uncached.
    let other = format!("{key}-2");
    let _: () = redis
        .pset_ex(shared::keys::Keys::lease(&other), "slow-loader", 10_000)
        .await
        .unwrap();
    let impatient = CachePolicy {
        max_wait: Duration::from_millis(50),
        ..POLICY
    };
    let value = app
        .state
        .cache
        .get_or_load(impatient, &other, || async {
            Ok::<_, Infallible>(Some(7_u8))
        })
        .await
        .unwrap();
    assert_eq!(value, Some(7));
    let stored: Option<String> = redis.get(&other).await.unwrap();
    assert_eq!(stored, None, "only the lease holder stores");
}

#[tokio::test]
async fn a_failed_or_empty_load_hands_the_lease_back() {
    let app = TestApp::spawn().await;
    let key = key(&app, "missing");
    let failed: Result<Option<String>, &str> = app
        .state
        .cache
        .get_or_load(POLICY, &key, || async { Err("database down") })
        .await;
    assert_eq!(failed, Err("database down"));
    let mut redis = app.redis().await;
    let lease: Option<String> = redis.get(shared::keys::Keys::lease(&key)).await.unwrap();
    assert_eq!(
        lease, None,
        "waiters need not wait for a failed loader's lease"
    );

    let nothing = app
        .state
        .cache
        .get_or_load(POLICY, &key, || async {
            Ok::<Option<String>, Infallible>(None)
        })
        .await
        .unwrap();
    assert_eq!(nothing, None);
    let lease: Option<String> = redis.get(shared::keys::Keys::lease(&key)).await.unwrap();
    assert_eq!(lease, None);
    let stored: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(stored, None, "not-found is not cached");
}

/// A Redis that accepts connections and never answers: the worst failure, slower than down.
async fn stalled_redis() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("redis://{address}"), accepted)
}

#[tokio::test]
async fn reads_are_served_while_redis_stalls_and_the_breaker_skips_it() {
    let (url, accepted) = stalled_redis().await;
    let app = TestApp::spawn_with(TestOptions {
        redis_url: Some(url),
        env: vec![
            ("REDIS_TIMEOUT_MS", "100".into()),
            ("REDIS_CONNECT_TIMEOUT_MS", "100".into()),
            ("REDIS_BREAKER_THRESHOLD", "2".into()),
            ("REDIS_BREAKER_COOLDOWN_MS", "60000".into()),
        ],
        ..TestOptions::default()
    })
    .await;
    let router = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let created = app
        .call(
            &router,
            Method::POST,
            "/patients",
            Some(&token),
            Some(json!({"first_name": "Inés", "last_name": "Vega"})),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_string();

    for _ in 0..5 {
        let shown = app
            .call(
                &router,
                Method::GET,
                &format!("/patients/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert_eq!(shown.body["first_name"], "Inés");
    }
    assert!(accepted.load(Ordering::SeqCst) >= 1, "Redis was tried");
    assert!(
        app.state.cache.circuit_open(),
        "repeated failures opened the breaker"
    );

    // While open, reads never touch Redis: no new connection attempts.
    let attempts = accepted.load(Ordering::SeqCst);
    for _ in 0..5 {
        let shown = app
            .call(
                &router,
                Method::GET,
                &format!("/patients/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(shown.status, 200);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), attempts);
}
