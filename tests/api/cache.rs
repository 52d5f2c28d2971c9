//! `shared::cache` against the real Redis: no stale set after an invalidation, one load per
//! missing key however many callers miss it, and recovery when a loader dies or fails.

use pulso_tests::{TestApp, TestOptions};
use redis::AsyncCommands;
use serde_json::{Value, json};
use shared::auth::Role;
use shared::cache::{CachePolicy, Prefetched, Ttl};
use shared::ids::ClinicId;
use shared::keys::{CacheKey, Keys};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;

pub(crate) const POLICY: CachePolicy = CachePolicy {
    name: "test",
    ttl: Ttl::Fixed(Duration::from_secs(60)),
    serve_stale_for: Duration::ZERO,
    lease: Duration::from_secs(3),
    max_wait: Duration::from_secs(2),
    xfetch_beta: 1.0,
};

/// A key of clinic A's that depends on the clinic's generation, like every real tenant key.
pub(crate) fn key(app: &TestApp, name: &str) -> CacheKey {
    key_of(app, app.clinic_a.id, name)
}

fn key_of(app: &TestApp, clinic: ClinicId, name: &str) -> CacheKey {
    let value = format!("{}:test:{{{clinic}}}:{name}:v1", app.redis_prefix);
    CacheKey {
        lease: Keys::lease(&value),
        value,
        generations: vec![app.state.keys.clinic_generation(clinic)],
        clinic: Some(clinic),
    }
}

/// A stored envelope: its header line (generations, freshness, load time) and the value.
fn split_envelope(bytes: &[u8]) -> (Value, Value) {
    let text = std::str::from_utf8(bytes).expect("text");
    let (header, value) = text
        .split_once('\n')
        .expect("a header line, then the value");
    (
        serde_json::from_str(header).expect("the header"),
        serde_json::from_str(value).expect("the value"),
    )
}

/// The value inside the stored envelope, if any.
pub(crate) async fn stored(app: &TestApp, key: &CacheKey) -> Option<Value> {
    let mut redis = app.redis().await;
    let bytes: Option<Vec<u8>> = redis.get(&key.value).await.unwrap();
    bytes.map(|bytes| split_envelope(&bytes).1)
}

async fn lease_of(app: &TestApp, key: &CacheKey) -> Option<String> {
    app.redis().await.get(&key.lease).await.unwrap()
}

/// Counts the loads a test's loaders perform.
#[derive(Clone, Default)]
struct Loads(Arc<AtomicUsize>);

impl Loads {
    fn loader<T: Send + 'static>(
        &self,
        value: T,
    ) -> impl FnOnce() -> std::future::Ready<Result<Option<T>, Infallible>> {
        let loads = self.0.clone();
        move || {
            loads.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(Some(value)))
        }
    }

    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
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

    assert_eq!(
        stored(&app, &key).await,
        None,
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
    assert_eq!(stored(&app, &key).await, Some(json!("new")));
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
    let orphan = key(&app, "orphan");
    let mut redis = app.redis().await;
    // A loader took the lease and vanished (a frozen or killed Lambda): its lease expires.
    let _: () = redis
        .pset_ex(&orphan.lease, "dead-loader", 200)
        .await
        .unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = loads.clone();
    let value = app
        .state
        .cache
        .get_or_load(POLICY, &orphan, || async move {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Some("recovered".to_string()))
        })
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("recovered"));
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        stored(&app, &orphan).await,
        Some(json!("recovered")),
        "the new lease holder filled the key"
    );

    // A lease that outlives the wait: the caller is served from the loader, uncached.
    let other = key(&app, "orphan-2");
    let _: () = redis
        .pset_ex(&other.lease, "slow-loader", 10_000)
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
    assert_eq!(
        stored(&app, &other).await,
        None,
        "only the lease holder stores"
    );
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
    assert_eq!(
        lease_of(&app, &key).await,
        None,
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
    assert_eq!(lease_of(&app, &key).await, None);
    assert_eq!(stored(&app, &key).await, None, "not-found is not cached");
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
    let client = app.client(&router, &token);
    let created = client
        .post(
            "/patients",
            &json!({"first_name": "Inés", "last_name": "Vega"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_str().unwrap().to_string();

    for _ in 0..5 {
        let shown = client.get(&format!("/patients/{id}")).await;
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
        let shown = client.get(&format!("/patients/{id}")).await;
        assert_eq!(shown.status, 200);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), attempts);
}

#[tokio::test]
async fn a_value_that_does_not_decode_is_a_miss_and_is_replaced() {
    let app = TestApp::spawn().await;
    let key = key(&app, "old-format");
    let mut redis = app.redis().await;
    let _: () = redis.set(&key.value, "{not an envelope").await.unwrap();
    let loads = Loads::default();
    let value = app
        .state
        .cache
        .get_or_load(POLICY, &key, loads.loader(5_u32))
        .await
        .unwrap();
    assert_eq!(value, Some(5));
    assert_eq!(loads.count(), 1);
    assert_eq!(stored(&app, &key).await, Some(json!(5)), "overwritten");
}

#[tokio::test]
async fn a_clinic_invalidation_drops_all_its_values_at_once_and_no_other_clinics() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let a1 = key(&app, "one");
    let a2 = key(&app, "two");
    let b1 = key_of(&app, app.clinic_b.id, "one");
    let loads = Loads::default();
    for key in [&a1, &a2, &b1] {
        cache
            .get_or_load(POLICY, key, loads.loader(String::from("old")))
            .await
            .unwrap();
    }
    assert_eq!(loads.count(), 3);

    cache.invalidate_clinic(app.clinic_a.id).await.unwrap();

    for key in [&a1, &a2] {
        let value = cache
            .get_or_load(POLICY, key, loads.loader(String::from("new")))
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some("new"), "clinic A reloads");
    }
    let value = cache
        .get_or_load(POLICY, &b1, loads.loader(String::from("new")))
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("old"), "clinic B keeps its value");
    assert_eq!(loads.count(), 5);
}

#[tokio::test]
async fn a_fill_that_loaded_before_a_generation_bump_is_never_served() {
    let app = TestApp::spawn().await;
    let cache = app.state.cache.clone();
    let key = key(&app, "raced");
    let (loading_tx, loading_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
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
    cache.invalidate_clinic(app.clinic_a.id).await.unwrap();
    release_tx.send(()).expect("reader waiting");
    reader.await.unwrap().unwrap();

    let loads = Loads::default();
    let value = cache
        .get_or_load(POLICY, &key, loads.loader("new".to_string()))
        .await
        .unwrap();
    assert_eq!(
        value.as_deref(),
        Some("new"),
        "the old generation is a miss"
    );
    assert_eq!(loads.count(), 1);
}

#[tokio::test]
async fn a_global_catalog_change_invalidates_every_clinics_view() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let keys = &app.state.keys;
    let views = [
        keys.catalog_view(app.clinic_a.id, "procedure"),
        keys.catalog_view(app.clinic_b.id, "procedure"),
    ];
    let patient = keys.patient_profile(
        app.clinic_a.id,
        shared::ids::PatientId(uuid::Uuid::new_v4()),
    );
    let loads = Loads::default();
    for key in views.iter().chain([&patient]) {
        cache
            .get_or_load(POLICY, key, loads.loader(1_u8))
            .await
            .unwrap();
    }
    cache.invalidate_global_catalog().await.unwrap();
    for key in &views {
        let value = cache
            .get_or_load(POLICY, key, loads.loader(2_u8))
            .await
            .unwrap();
        assert_eq!(value, Some(2));
    }
    let value = cache
        .get_or_load(POLICY, &patient, loads.loader(2_u8))
        .await
        .unwrap();
    assert_eq!(
        value,
        Some(1),
        "a patient profile does not depend on the catalog"
    );
    assert_eq!(loads.count(), 5);
}

#[tokio::test]
async fn a_generation_lost_by_redis_never_revives_an_invalidated_value() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let key = key(&app, "evicted");
    let loads = Loads::default();
    cache
        .get_or_load(POLICY, &key, loads.loader(String::from("old")))
        .await
        .unwrap();
    // The counter vanishes (eviction, a restart that kept the value): a new random
    // generation is drawn, so the old value no longer matches.
    let mut redis = app.redis().await;
    let _: () = redis.del(&key.generations[0]).await.unwrap();
    let value = cache
        .get_or_load(POLICY, &key, loads.loader(String::from("new")))
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("new"));
    assert_eq!(loads.count(), 2);
}

/// What the request gate's script would have read for `key` (`shared::cache::Prefetched`).
async fn read_ahead(app: &TestApp, key: &CacheKey) -> Prefetched {
    let mut redis = app.redis().await;
    let keys = Prefetched::keys(key, key.clinic.unwrap());
    assert_eq!(keys.len(), 1 + key.generations.len(), "one slot: {keys:?}");
    let replies: Vec<Option<Vec<u8>>> = redis.mget(&keys).await.unwrap();
    Prefetched::from_replies(key, replies)
}

#[tokio::test]
async fn a_value_read_ahead_by_the_gate_is_served_without_asking_redis_again() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let key = key(&app, "ahead");
    let loads = Loads::default();
    cache
        .get_or_load(POLICY, &key, loads.loader(String::from("cached")))
        .await
        .unwrap();
    let ahead = read_ahead(&app, &key).await;
    // Gone from Redis since: a read that asked Redis would miss and load.
    let _: () = app.redis().await.del(&key.value).await.unwrap();
    let value = cache
        .get_or_load_prefetched(POLICY, &key, ahead, loads.loader(String::from("loaded")))
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("cached"));
    assert_eq!(loads.count(), 1, "served from what was read ahead");
}

#[tokio::test]
async fn a_read_ahead_of_another_key_or_an_older_generation_is_not_served() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let (one, other) = (key(&app, "one"), key(&app, "other"));
    let loads = Loads::default();
    cache
        .get_or_load(POLICY, &one, loads.loader(1_u32))
        .await
        .unwrap();

    // Another key's read is ignored: the read asks Redis (nothing there) and loads.
    let value = cache
        .get_or_load_prefetched(
            POLICY,
            &other,
            read_ahead(&app, &one).await,
            loads.loader(2),
        )
        .await
        .unwrap();
    assert_eq!((value, loads.count()), (Some(2), 2));

    // Read ahead, then the clinic's values are invalidated before the read: the value read
    // carries the old generation, which the counter read beside it still names, so it is served
    // as a read that raced the invalidation would have served it. The next read sees the bump.
    let ahead = read_ahead(&app, &one).await;
    cache.invalidate_clinic(app.clinic_a.id).await.unwrap();
    let raced = cache
        .get_or_load_prefetched(POLICY, &one, ahead, loads.loader(3))
        .await
        .unwrap();
    assert_eq!((raced, loads.count()), (Some(1), 2));
    let after = cache
        .get_or_load_prefetched(POLICY, &one, read_ahead(&app, &one).await, loads.loader(4))
        .await
        .unwrap();
    assert_eq!((after, loads.count()), (Some(4), 3));
}

#[tokio::test]
async fn a_read_ahead_that_found_no_generation_creates_it() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let key = key(&app, "first-use");
    let mut redis = app.redis().await;
    let _: () = redis.del(&key.generations[0]).await.unwrap();
    let loads = Loads::default();
    let value = cache
        .get_or_load_prefetched(
            POLICY,
            &key,
            read_ahead(&app, &key).await,
            loads.loader(7_u32),
        )
        .await
        .unwrap();
    assert_eq!((value, loads.count()), (Some(7), 1));
    let generation: Option<u64> = redis.get(&key.generations[0]).await.unwrap();
    assert!(generation.is_some(), "the counter exists again");
    // Stored under that counter: the next read (ahead or not) is a hit.
    let again = cache
        .get_or_load_prefetched(POLICY, &key, read_ahead(&app, &key).await, loads.loader(8))
        .await
        .unwrap();
    assert_eq!((again, loads.count()), (Some(7), 1));
}

#[tokio::test]
async fn a_hot_value_near_expiry_is_recomputed_early_by_one_caller() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let key = key(&app, "xfetch");
    let loads = Loads::default();
    cache
        .get_or_load(POLICY, &key, loads.loader(String::from("v1")))
        .await
        .unwrap();
    // Rewrite the envelope: 1 s of freshness left, and a load that took 10^12 ms. XFetch's
    // head start δ·β·(−ln rand) then exceeds 1 s unless rand > e^(−1e-9): practically always.
    let mut redis = app.redis().await;
    let bytes: Vec<u8> = redis.get(&key.value).await.unwrap();
    let (mut header, value) = split_envelope(&bytes);
    let now_ms = chrono::Utc::now().timestamp_millis();
    header["f"] = json!(now_ms + 1_000);
    header["d"] = json!(1_000_000_000_000_000_u64);
    let _: () = redis
        .set(&key.value, format!("{header}\n{value}"))
        .await
        .unwrap();

    let value = cache
        .get_or_load(POLICY, &key, loads.loader(String::from("v2")))
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("v2"), "refreshed before it expired");
    assert_eq!(loads.count(), 2);
    let value = cache
        .get_or_load(POLICY, &key, loads.loader(String::from("v3")))
        .await
        .unwrap();
    assert_eq!(
        value.as_deref(),
        Some("v2"),
        "the refreshed value is fresh again"
    );
    assert_eq!(loads.count(), 2);
}

#[tokio::test]
async fn past_its_freshness_a_value_is_served_stale_while_one_caller_recomputes() {
    let app = TestApp::spawn().await;
    let cache = app.state.cache.clone();
    let swr = CachePolicy {
        name: "swr",
        ttl: Ttl::Fixed(Duration::from_millis(50)),
        serve_stale_for: Duration::from_secs(60),
        ..POLICY
    };
    let key = key(&app, "swr");
    let loads = Loads::default();
    cache
        .get_or_load(swr, &key, loads.loader(String::from("v1")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;

    // The first reader after expiry takes the lease and recomputes (slowly)...
    let (loading_tx, loading_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let refresher = {
        let cache = cache.clone();
        let key = key.clone();
        tokio::spawn(async move {
            cache
                .get_or_load(swr, &key, || async move {
                    let _ = loading_tx.send(());
                    let _ = release_rx.await;
                    Ok::<_, Infallible>(Some("v2".to_string()))
                })
                .await
        })
    };
    loading_rx.await.expect("the refresher is loading");
    // ...while everyone else is answered at once with the previous value, without loading.
    for _ in 0..5 {
        let value = cache
            .get_or_load(swr, &key, loads.loader(String::from("never")))
            .await
            .unwrap();
        assert_eq!(value.as_deref(), Some("v1"));
    }
    assert_eq!(loads.count(), 1);
    release_tx.send(()).unwrap();
    assert_eq!(refresher.await.unwrap().unwrap().as_deref(), Some("v2"));
    let value = cache
        .get_or_load(swr, &key, loads.loader(String::from("never")))
        .await
        .unwrap();
    assert_eq!(value.as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_scheduled_refresh_replaces_the_value_unless_someone_is_filling() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let key = key(&app, "refreshed");
    let loads = Loads::default();
    cache
        .get_or_load(POLICY, &key, loads.loader(1_u8))
        .await
        .unwrap();
    assert!(
        cache
            .refresh(POLICY, &key, loads.loader(2_u8))
            .await
            .unwrap()
    );
    let value = cache
        .get_or_load(POLICY, &key, loads.loader(3_u8))
        .await
        .unwrap();
    assert_eq!(value, Some(2));

    let mut redis = app.redis().await;
    let _: () = redis.pset_ex(&key.lease, "someone", 10_000).await.unwrap();
    assert!(
        !cache
            .refresh(POLICY, &key, loads.loader(4_u8))
            .await
            .unwrap()
    );
    assert_eq!(loads.count(), 2, "no load while another caller fills");
}

#[tokio::test]
async fn counters_reach_redis_per_clinic_and_in_total() {
    let app = TestApp::spawn().await;
    let cache = &app.state.cache;
    let loads = Loads::default();
    let a = key(&app, "counted");
    let b = key_of(&app, app.clinic_b.id, "counted");
    for _ in 0..4 {
        cache
            .get_or_load(POLICY, &a, loads.loader(1_u8))
            .await
            .unwrap();
    }
    cache
        .get_or_load(POLICY, &b, loads.loader(1_u8))
        .await
        .unwrap();
    cache.flush_metrics().await;

    let (clinic_a, since) = cache.stats(Some(app.clinic_a.id)).await.unwrap();
    assert!(since.is_some());
    let test = &clinic_a["test"];
    assert_eq!((test.hits, test.misses, test.loads), (3, 1, 1));
    assert_eq!(test.hit_rate, Some(0.75));
    assert!(test.load_ms_mean.is_some() && test.load_ms_p50_at_most.is_some());

    let (clinic_b, _) = cache.stats(Some(app.clinic_b.id)).await.unwrap();
    assert_eq!((clinic_b["test"].hits, clinic_b["test"].misses), (0, 1));
    let (all, _) = cache.stats(None).await.unwrap();
    assert_eq!((all["test"].hits, all["test"].misses), (3, 2));
}
