//! The rate limiter against the real Redis: per-user and per-clinic buckets, charged together,
//! never charged for a refusal, isolated between clinics, and open when Redis is down.

use pulso_tests::{TestApp, TestOptions};
use redis::AsyncCommands;
use shared::ratelimit::{Quotas, RateLimiter, RateLimits, RouteClass, Scope, Verdict};
use std::time::Duration;

/// Three uploads per user and five per clinic a minute; every other class is roomy.
fn tight_uploads() -> RateLimits {
    let roomy = Quotas::per_minute(1000, 1000, 1000, 1000, 1000);
    RateLimits {
        per_user: roomy.with_overrides("uploads=3").unwrap(),
        per_clinic: roomy.with_overrides("uploads=5").unwrap(),
    }
}

fn limiter(app: &TestApp, limits: RateLimits) -> RateLimiter {
    RateLimiter::new(app.state.redis.clone(), app.state.keys.clone(), limits)
}

fn allowed(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Allowed(_))
}

#[tokio::test]
async fn a_user_gets_their_quota_then_a_retry_after() {
    let app = TestApp::spawn().await;
    let limiter = limiter(&app, tight_uploads());
    let (clinic, user) = (app.clinic_a.id, app.clinic_a.receptionist);
    for n in (0..3).rev() {
        match limiter.check(clinic, user, RouteClass::Uploads).await {
            Verdict::Allowed(usage) => {
                assert_eq!(usage.tightest.scope, Scope::User);
                assert_eq!(usage.remaining, n);
            }
            other => panic!("upload {} refused: {other:?}", 3 - n),
        }
    }
    let Verdict::Limited { usage, retry_after } =
        limiter.check(clinic, user, RouteClass::Uploads).await
    else {
        panic!("the fourth upload passed");
    };
    assert_eq!(usage.tightest.scope, Scope::User);
    assert_eq!(usage.remaining, 0);
    // One request's share of the minute, less the little time the test took.
    assert!(
        retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20),
        "{retry_after:?}"
    );
    // Another class is another bucket.
    assert!(allowed(
        &limiter.check(clinic, user, RouteClass::Reads).await
    ));
}

#[tokio::test]
async fn the_clinic_bucket_caps_all_its_staff_and_no_other_clinic() {
    let app = TestApp::spawn().await;
    let limiter = limiter(&app, tight_uploads());
    let a = &app.clinic_a;
    for _ in 0..3 {
        assert!(allowed(
            &limiter
                .check(a.id, a.receptionist, RouteClass::Uploads)
                .await
        ));
    }
    for _ in 0..2 {
        assert!(allowed(
            &limiter.check(a.id, a.dentist, RouteClass::Uploads).await
        ));
    }
    let Verdict::Limited { usage, .. } = limiter.check(a.id, a.admin, RouteClass::Uploads).await
    else {
        panic!("the clinic's sixth upload passed");
    };
    assert_eq!(usage.tightest.scope, Scope::Clinic);
    // Clinic B's staff are untouched by clinic A's load.
    let b = &app.clinic_b;
    assert!(allowed(
        &limiter
            .check(b.id, b.receptionist, RouteClass::Uploads)
            .await
    ));
}

#[tokio::test]
async fn a_refused_request_charges_neither_bucket() {
    let app = TestApp::spawn().await;
    let limiter = limiter(&app, tight_uploads());
    let a = &app.clinic_a;
    for _ in 0..3 {
        limiter
            .check(a.id, a.receptionist, RouteClass::Uploads)
            .await;
    }
    // The receptionist hammers on, refused each time...
    for _ in 0..20 {
        let verdict = limiter
            .check(a.id, a.receptionist, RouteClass::Uploads)
            .await;
        assert!(matches!(verdict, Verdict::Limited { .. }), "{verdict:?}");
    }
    // ...which leaves the clinic's other two uploads to the dentist.
    for _ in 0..2 {
        assert!(allowed(
            &limiter.check(a.id, a.dentist, RouteClass::Uploads).await
        ));
    }
}

#[tokio::test]
async fn buckets_expire_when_they_are_full_again() {
    let app = TestApp::spawn().await;
    let limiter = limiter(&app, tight_uploads());
    let a = &app.clinic_a;
    limiter
        .check(a.id, a.receptionist, RouteClass::Uploads)
        .await;
    let mut redis = app.redis().await;
    let key = app
        .state
        .keys
        .rate_user_bucket(a.id, a.receptionist, "uploads");
    let ttl: i64 = redis.pttl(&key).await.unwrap();
    // One upload is 20 s of a 60 s window: the key goes when those 20 s have passed.
    assert!(ttl > 15_000 && ttl <= 20_001, "{ttl} ms");
}

#[tokio::test]
async fn without_redis_requests_pass() {
    let app = TestApp::spawn_with(TestOptions {
        redis_unreachable: true,
        ..TestOptions::default()
    })
    .await;
    let limiter = limiter(&app, tight_uploads());
    let a = &app.clinic_a;
    for _ in 0..10 {
        let verdict = limiter
            .check(a.id, a.receptionist, RouteClass::Uploads)
            .await;
        assert_eq!(verdict, Verdict::Unchecked);
    }
}
