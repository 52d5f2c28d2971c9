//! Real-time fan-out measured through the local gateway (issue 6): one notification pushed to
//! 1,000 live WebSocket connections (real tokio-tungstenite clients, the gateway of
//! `infra/gateway` reading template.yaml, PostToConnection through the real AWS SDK), beside
//! the raw limit measured in the same run: plain HTTP POSTs to the same @connections API (no
//! SDK, no signing), one at a time and with the same concurrency.
//!
//! Run: `cargo bench -p pulso-tests --bench realtime` (services from infra/scripts/services.sh).
//! `BENCH_CONNECTIONS` (default 1000), `BENCH_ROUNDS` (default 5), `BENCH_ITERATIONS` (default
//! 2000 single posts). Prints figures; asserts nothing about time. Targets (issue 6): every
//! connection within 0.25 s, at least 5,000 messages/s.

mod common;

use common::{Stats, header, measure, report};
use futures_util::StreamExt;
use pulso_tests::TestApp;
use pulso_tests::realtime::{LocalGateway, sdk_notifier};
use serde_json::{Value, json};
use shared::AppState;
use shared::auth::Role;
use shared::realtime::{self, Audience, NewNotification, Notice, Notifier};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    common::block_on(run());
}

/// One frame a client received: the notification id and when.
struct Received {
    id: i64,
    at: Instant,
}

async fn run() {
    let connections = env_number("BENCH_CONNECTIONS", 1_000);
    let rounds = env_number("BENCH_ROUNDS", 5);
    let iterations = env_number("BENCH_ITERATIONS", 2_000);
    let app = TestApp::spawn().await;
    let gateway = LocalGateway::start(&app).await;
    let clinic = app.clinic_a;
    let concurrency = gateway.state.config.realtime.push_concurrency;
    println!(
        "Pulso real-time benchmark — {connections} WebSocket connections through the local \
         gateway ({}), {rounds} rounds; push concurrency {concurrency}, per-post timeout {:?}",
        gateway.endpoint, gateway.state.config.realtime.push_timeout
    );

    // ------------------------------------------------------------------ connections
    let (received_tx, mut received) = mpsc::unbounded_channel::<Received>();
    let tokens: Vec<String> = [Role::Admin, Role::Dentist, Role::Receptionist]
        .iter()
        .map(|role| app.token(&clinic, *role))
        .collect();
    let started = Instant::now();
    let opened: Vec<_> = futures_util::stream::iter(0..connections)
        .map(|n| {
            let url = gateway.url(&format!("token={}", tokens[n % tokens.len()]));
            async move { tokio_tungstenite::connect_async(url).await }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let mut open = 0;
    for result in opened {
        let Ok((mut socket, _)) = result else {
            continue;
        };
        open += 1;
        let received_tx = received_tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = socket.next().await {
                let at = Instant::now();
                if let Message::Text(text) = message {
                    let id = serde_json::from_str::<Value>(text.as_str())
                        .ok()
                        .and_then(|frame| frame["notification"]["id"].as_i64())
                        .unwrap_or(-1);
                    let _ = received_tx.send(Received { id, at });
                }
            }
        });
    }
    let opening = started.elapsed();
    println!(
        "opened {open} of {connections} connections in {:.2} s ({:.0} handshakes/s, each \
         running ws-connect: JWT check + registry script)",
        opening.as_secs_f64(),
        open as f64 / opening.as_secs_f64()
    );

    // ------------------------------------------------------------------ single posts
    header("one post to one connection, 1 caller");
    let target = realtime::ConnectionRegistry::new(&gateway.state)
        .audience(Audience::User {
            clinic: clinic.id,
            user: clinic.admin,
        })
        .await
        .expect("registry")
        .into_iter()
        .next()
        .expect("an admin connection");
    let raw = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    let url = format!(
        "{}/@connections/{}",
        gateway.endpoint,
        target
            .connection_id
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let payload = json!({"type": "bench", "notification": {"id": -1}}).to_string();
    let raw_post = measure(iterations, |_| {
        let (raw, url, payload) = (&raw, &url, &payload);
        async move {
            let response = raw.post(url).body(payload.clone()).send().await;
            assert!(response.is_ok_and(|r| r.status().is_success()));
        }
    })
    .await;
    report("raw HTTP POST /@connections (reqwest, unsigned)", &raw_post);
    let sdk = sdk_notifier(&gateway.endpoint);
    let sdk_post = measure(iterations, |_| {
        let (sdk, id, payload) = (&sdk, &target.connection_id, &payload);
        async move {
            let outcome = sdk.post(id, payload.as_bytes()).await;
            assert_eq!(outcome, realtime::PostOutcome::Delivered);
        }
    })
    .await;
    report("PostToConnection (aws-sdk, SigV4)", &sdk_post);
    println!(
        "SDK cost per post: {:.1} µs p50 over the raw POST",
        sdk_post.p50_us - raw_post.p50_us
    );
    // Let the clients drain the single posts before the fan-out rounds.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while received.try_recv().is_ok() {}

    // ------------------------------------------------------------------ fan-out
    println!();
    println!("fan-out of one notification to every connection of the clinic");
    println!(
        "{:<52} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "", "conns", "p50 ms", "p99 ms", "all ms", "msgs/s", "push ms"
    );
    for concurrency in [16, concurrency, 256] {
        let state = with_concurrency(&gateway.state, concurrency);
        for round in 0..rounds {
            let started = Instant::now();
            let delivery = realtime::notify(
                &state,
                NewNotification::new(
                    Audience::Clinic(clinic.id),
                    "Bench",
                    Notice::announcement(format!("fan-out {round}")),
                ),
            )
            .await
            .expect("notify");
            let pushed = started.elapsed();
            let id = delivery.notification.id;
            let mut latencies = Vec::with_capacity(open);
            let deadline = Instant::now() + Duration::from_secs(10);
            while latencies.len() < delivery.push.delivered && Instant::now() < deadline {
                match tokio::time::timeout(Duration::from_secs(10), received.recv()).await {
                    Ok(Some(frame)) if frame.id == id => {
                        latencies.push(frame.at.duration_since(started))
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            let all = latencies.iter().max().copied().unwrap_or_default();
            let count = latencies.len();
            let stats = Stats::from(latencies, Some(all));
            println!(
                "{:<52} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>10.1}",
                format!(
                    "notify (store + push), concurrency {concurrency}, round {}",
                    round + 1
                ),
                format!("{count}/{}", delivery.push.connections),
                stats.p50_us / 1000.0,
                stats.p99_us / 1000.0,
                all.as_secs_f64() * 1000.0,
                count as f64 / all.as_secs_f64().max(f64::EPSILON),
                pushed.as_secs_f64() * 1000.0,
            );
            if delivery.push.failed > 0 || delivery.push.gone > 0 {
                println!("    push report: {:?}", delivery.push);
            }
        }
    }

    // The raw limit of the same path: unsigned POSTs, same concurrency, no inbox write.
    let ids: Vec<String> = realtime::ConnectionRegistry::new(&gateway.state)
        .audience(Audience::Clinic(clinic.id))
        .await
        .expect("registry")
        .into_iter()
        .map(|target| target.connection_id)
        .collect();
    for round in 0..rounds {
        let marker = -(round as i64) - 100;
        let body = json!({"type": "bench", "notification": {"id": marker}}).to_string();
        let started = Instant::now();
        let posted: Vec<bool> = futures_util::stream::iter(ids.iter())
            .map(|id| {
                let url = format!(
                    "{}/@connections/{}",
                    gateway.endpoint,
                    id.replace('+', "%2B")
                        .replace('/', "%2F")
                        .replace('=', "%3D")
                );
                let (raw, body) = (&raw, body.clone());
                async move {
                    raw.post(url)
                        .body(body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let posted_in = started.elapsed();
        let delivered = posted.iter().filter(|ok| **ok).count();
        let mut latencies = Vec::with_capacity(delivered);
        while latencies.len() < delivered {
            match tokio::time::timeout(Duration::from_secs(10), received.recv()).await {
                Ok(Some(frame)) if frame.id == marker => {
                    latencies.push(frame.at.duration_since(started))
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let all = latencies.iter().max().copied().unwrap_or_default();
        let count = latencies.len();
        let stats = Stats::from(latencies, Some(all));
        println!(
            "{:<52} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>10.1}",
            format!(
                "raw unsigned POSTs, concurrency {concurrency}, round {}",
                round + 1
            ),
            format!("{count}/{}", ids.len()),
            stats.p50_us / 1000.0,
            stats.p99_us / 1000.0,
            all.as_secs_f64() * 1000.0,
            count as f64 / all.as_secs_f64().max(f64::EPSILON),
            posted_in.as_secs_f64() * 1000.0,
        );
    }
    println!();
    println!(
        "p50/p99/all: from the start of notify (or of the raw POSTs) to the frame's arrival at \
         each client; msgs/s = frames received / time until the last one; push ms = until \
         notify (or the POSTs) returned."
    );
}

/// `state` with another push concurrency.
fn with_concurrency(state: &AppState, concurrency: usize) -> AppState {
    let mut config = (*state.config).clone();
    config.realtime.push_concurrency = concurrency;
    let mut state = state.clone();
    state.config = Arc::new(config);
    if matches!(state.notifier, Notifier::Off) {
        panic!("the benchmark needs a notifier");
    }
    state
}
