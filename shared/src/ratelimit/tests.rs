use super::*;

fn usage(remaining: u64, reset_ms: u64) -> Usage {
    let limits = RateLimits::default();
    let user = Policy {
        scope: Scope::User,
        class: RouteClass::Uploads,
        quota: limits.per_user.get(RouteClass::Uploads),
    };
    let clinic = Policy {
        scope: Scope::Clinic,
        class: RouteClass::Uploads,
        quota: limits.per_clinic.get(RouteClass::Uploads),
    };
    Usage {
        policies: [user, clinic],
        tightest: user,
        remaining,
        reset: Duration::from_millis(reset_ms),
    }
}

#[test]
fn headers_follow_the_ietf_draft() {
    let [(policy_name, policy), (state_name, state)] = usage(7, 1_500).headers();
    assert_eq!(policy_name, "ratelimit-policy");
    assert_eq!(
        policy,
        "\"user-uploads\";q=30;w=60, \"clinic-uploads\";q=120;w=60"
    );
    assert_eq!(state_name, "ratelimit");
    assert_eq!(state, "\"user-uploads\";r=7;t=2", "t rounds up");
}

#[test]
fn the_script_reply_becomes_a_verdict_naming_the_tightest_bucket() {
    let [user, clinic] = usage(0, 0).policies;
    // allowed, retry, user (remaining, reset µs), clinic (remaining, reset µs)
    match verdict([user, clinic], &[1, 0, 9, 2_000_000, 3, 50_000_000]) {
        Verdict::Allowed(usage) => {
            assert_eq!(usage.tightest, clinic);
            assert_eq!(usage.remaining, 3);
            assert_eq!(usage.reset, Duration::from_secs(50));
        }
        other => panic!("{other:?}"),
    }
    match verdict([user, clinic], &[0, 1_250_000, 0, 60_000_000, 40, 1_000]) {
        Verdict::Limited { usage, retry_after } => {
            assert_eq!(usage.tightest, user);
            assert_eq!(retry_after, Duration::from_micros(1_250_000));
            assert_eq!(whole_seconds(retry_after), 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(verdict([user, clinic], &[]), Verdict::Unchecked);
}
