//! End-to-end: schedules from the template tick their functions on a fake Invoke API,
//! never overlapping, and the `/_local/schedules` endpoints list and trigger them.

mod common;

use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use common::{client, config, start_fake_watch, start_gateway};
use pulso_gateway::cli::ScheduleMode;
use serde_json::{Value, json};

/// rate(1 minute) at this speed ticks every 100 ms.
const FAST: u32 = 600;

async fn listing(http: std::net::SocketAddr) -> Value {
    let response = client()
        .get(format!("http://{http}/_local/schedules"))
        .send()
        .await
        .expect("list schedules");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("json")
}

fn schedule<'a>(listing: &'a Value, id: &str) -> &'a Value {
    listing["schedules"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("{id} in {listing}"))
}

#[tokio::test]
async fn rate_schedules_tick_with_a_scheduled_event() {
    let (watch_addr, watch) = start_fake_watch().await;
    let mut config = config("schedules.yaml", watch_addr);
    config.schedules = ScheduleMode::On;
    config.schedule_speed = FAST;
    config.region = "eu-west-1".to_owned();
    let running = start_gateway(&config).await;
    assert!(
        running.summary.contains("TickerFunction.Tick") && running.summary.contains("every 100 ms"),
        "{}",
        running.summary
    );

    let events = watch.wait_for("ticker", 3).await;
    for event in &events {
        let parsed: EventBridgeEvent<Value> =
            serde_json::from_value(event.clone()).expect("deserializes like on AWS");
        assert_eq!(parsed.detail_type, "Scheduled Event");
        assert_eq!(parsed.source, "aws.events");
        assert_eq!(parsed.region.as_deref(), Some("eu-west-1"));
        assert_eq!(parsed.account.as_deref(), Some("123456789012"));
        assert_eq!(parsed.detail, json!({}));
        assert_eq!(
            parsed.resources,
            Some(vec![
                "arn:aws:events:eu-west-1:123456789012:rule/TickerFunctionTick".to_owned()
            ])
        );
        assert_eq!(event["version"], "0");
        let time = event["time"].as_str().expect("time");
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        assert!(time.ends_with('Z') && !time.contains('.'), "{time}");
    }
    let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] != pair[1]), "{ids:?}");

    let listed = listing(running.http).await;
    assert_eq!(listed["automatic"], true);
    assert_eq!(listed["speed"], FAST);
    let ticker = schedule(&listed, "TickerFunction.Tick");
    assert!(ticker["runs"].as_u64() >= Some(3), "{ticker}");
    assert_eq!(ticker["binary"], "ticker");
    assert_eq!(ticker["expression"], "rate(1 minute)");
    assert_eq!(ticker["lastRun"]["outcome"], "ok");
    assert_eq!(ticker["lastRun"]["trigger"], "timer");
    assert!(ticker["nextRunAt"].is_string(), "{ticker}");

    // `Enabled: false` never ticks; a cron schedule waits for its time.
    let disabled = schedule(&listed, "DisabledFunction.Tick");
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["ticking"], "disabled");
    assert_eq!(disabled["runs"], 0);
    assert!(watch.invocations("disabled").is_empty());
    let nightly = schedule(&listed, "FailingFunction.Nightly");
    assert_eq!(nightly["ticking"], "cron(0 3 * * ? *) (UTC)");
    assert!(
        nightly["nextRunAt"]
            .as_str()
            .is_some_and(|at| at.contains("T03:00:00"))
    );
    let evening = schedule(&listed, "ReportsFunction.Evening");
    assert_eq!(evening["enabled"], false);
}

#[tokio::test]
async fn ticks_of_one_function_never_overlap() {
    let (watch_addr, watch) = start_fake_watch().await;
    if let Ok(mut pause) = watch.slow_for.lock() {
        *pause = Duration::from_millis(450);
    }
    let mut config = config("schedules.yaml", watch_addr);
    config.schedules = ScheduleMode::On;
    config.schedule_speed = FAST;
    let running = start_gateway(&config).await;

    watch.wait_for("slow", 3).await;
    assert_eq!(
        watch.most_concurrent("slow"),
        1,
        "two ticks of `slow` ran at once"
    );
    let listed = listing(running.http).await;
    let slow = schedule(&listed, "SlowFunction.Tick");
    assert!(slow["skipped"].as_u64() > Some(0), "{slow}");

    // A manual trigger while a tick runs is refused the same way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = client()
            .post(format!(
                "http://{}/_local/schedules/slow/trigger",
                running.http
            ))
            .send()
            .await
            .expect("trigger");
        if response.status() == 409 {
            let body: Value = response.json().await.expect("json");
            assert!(
                body["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("still running")),
                "{body}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw a running tick"
        );
    }
    assert_eq!(watch.most_concurrent("slow"), 1);
}

#[tokio::test]
async fn manual_trigger_returns_the_functions_answer() {
    let (watch_addr, watch) = start_fake_watch().await;
    let running = start_gateway(&config("schedules.yaml", watch_addr)).await;
    assert!(
        running.summary.contains("manual trigger only"),
        "{}",
        running.summary
    );
    let trigger = |name: &str| {
        client()
            .post(format!(
                "http://{}/_local/schedules/{name}/trigger",
                running.http
            ))
            .send()
    };

    // By logical id, by binary, by Function.Event.
    for name in ["TickerFunction", "ticker", "TickerFunction.Tick"] {
        let response = trigger(name).await.expect("trigger");
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(
            response.headers()["x-pulso-schedule"],
            "TickerFunction.Tick"
        );
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            response.json::<Value>().await.expect("json"),
            json!({"ticked": true})
        );
    }
    assert_eq!(watch.invocations("ticker").len(), 3);
    let listed = listing(running.http).await;
    let ticker = schedule(&listed, "TickerFunction.Tick");
    assert_eq!(ticker["lastRun"]["trigger"], "manual");
    assert_eq!(ticker["ticking"], "manual only (--schedules off)");
    assert_eq!(ticker["nextRunAt"], Value::Null);

    // A disabled schedule can still be run by hand.
    let response = trigger("DisabledFunction").await.expect("trigger");
    assert_eq!(response.status(), 200);

    // Input replaces the Scheduled Event, as on EventBridge.
    let response = trigger("ReportsFunction.Morning").await.expect("trigger");
    assert_eq!(response.status(), 200);
    assert_eq!(
        watch.invocations("reports").last(),
        Some(&json!({"task": "morning-report"}))
    );

    // A function error: 502 with the function's error.
    let response = trigger("FailingFunction.Nightly").await.expect("trigger");
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["errorMessage"], "failing on purpose");
    let listed = listing(running.http).await;
    let failing = schedule(&listed, "FailingFunction.Nightly");
    assert_eq!(failing["failures"], 1);
    assert_eq!(failing["lastRun"]["outcome"], "error");
    assert_eq!(failing["lastRun"]["error"], "failing on purpose");

    // Ambiguous and unknown names.
    let response = trigger("ReportsFunction").await.expect("trigger");
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        body["schedules"],
        json!(["ReportsFunction.Morning", "ReportsFunction.Evening"])
    );
    let response = trigger("NoSuchFunction").await.expect("trigger");
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("json");
    assert!(
        body["schedules"]
            .as_array()
            .is_some_and(|all| all.len() == 6),
        "{body}"
    );

    // Nothing ticks by itself with --schedules off.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(watch.invocations("ticker").len(), 3);
    assert!(watch.invocations("slow").is_empty());
}

#[tokio::test]
async fn tick_now_runs_every_enabled_schedule_once_at_start() {
    let (watch_addr, watch) = start_fake_watch().await;
    let mut config = config("schedules.yaml", watch_addr);
    config.tick_now = true;
    let running = start_gateway(&config).await;
    for function in ["ticker", "slow", "failing", "reports"] {
        watch.wait_for(function, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for function in ["ticker", "slow", "failing", "reports"] {
        assert_eq!(watch.invocations(function).len(), 1, "{function}");
    }
    assert!(watch.invocations("disabled").is_empty());
    let listed = listing(running.http).await;
    assert_eq!(
        schedule(&listed, "TickerFunction.Tick")["lastRun"]["trigger"],
        "startup"
    );
}

#[tokio::test]
async fn control_endpoints_do_not_hide_http_routes() {
    let (watch_addr, _watch) = start_fake_watch().await;
    let running = start_gateway(&config("schedules.yaml", watch_addr)).await;
    // No HTTP route in this template: everything else is API Gateway's 404.
    let response = client()
        .get(format!("http://{}/items/1", running.http))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.expect("body"),
        r#"{"message":"Not Found"}"#
    );
}
