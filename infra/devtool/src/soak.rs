//! `pulso-devtool soak`: a developer's browser against the local stack for a while — bursts of
//! reads, a WebSocket session now and then, and idle gaps of up to 90 s (a third of them over
//! 60 s, the idleness that used to kill the functions) — then what it saw: answers by status,
//! the 5xx the gateway gave itself, WebSocket sessions, and how often functions were restarted.
//!
//! The plan (burst sizes, routes, sessions, gaps) comes from one seeded generator, so a run is
//! repeated with `--seed`. Any 5xx, missing answer or failed WebSocket session fails the run.

use crate::listing::{self, FunctionStatus};
use crate::stack::{self, Reply, Stack, human};
use anyhow::{Context, bail};
use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::Value;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const USAGE: &str = "usage: pulso-devtool soak [--gateway URL] [--duration 10m|600s|1h] [--seed N]";
const DEFAULT_DURATION: Duration = Duration::from_secs(600);
/// Keeps the run within the admin token's validity, minted for the duration.
const LONGEST: Duration = Duration::from_secs(24 * 3600);
const MAX_BURST: usize = 20;
/// A browser's connections per host: a burst is sent this many at a time.
const IN_FLIGHT: usize = 6;
const MAX_GAP: Duration = Duration::from_secs(90);
const WEBSOCKET_CHANCE: f64 = 0.25;
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// Beyond API Gateway's 30 s integration timeout: an answer later than this is no answer.
const REQUEST_WAIT: Duration = Duration::from_secs(40);
const PATIENT_DETAIL: &str = "/patients/{id}";
const PATIENT_LIST: &str = "/patients?search=garcia";

#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub gateway: String,
    pub duration: Duration,
    pub seed: Option<u64>,
}

impl Options {
    pub fn parse(options: &[String]) -> anyhow::Result<Self> {
        let mut parsed = Self {
            gateway: stack::DEFAULT_GATEWAY.into(),
            duration: DEFAULT_DURATION,
            seed: None,
        };
        for (name, value) in stack::option_pairs(options, USAGE)? {
            match name.as_str() {
                "--gateway" => parsed.gateway = value,
                "--duration" => parsed.duration = parse_duration(&value)?,
                "--seed" => {
                    parsed.seed = Some(value.trim().parse().ok().with_context(|| {
                        format!("--seed must be a whole number from 0 to {}", u64::MAX)
                    })?)
                }
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        Ok(parsed)
    }
}

/// `600s`, `10m`, `1h` (or `600`, seconds): at least a second, at most a day.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            bail!("--duration {text:?}: write a whole number with s, m or h, like 600s, 10m or 1h")
        }
    };
    let duration = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per_unit))
        .map(Duration::from_secs)
        .filter(|d| !d.is_zero() && *d <= LONGEST)
        .with_context(|| {
            format!("--duration {text:?}: a whole number of s, m or h, from 1s to 24h")
        })?;
    Ok(duration)
}

/// A GET the soak sends: the route key it exercises and the path (with `{id}` for a patient
/// learnt from a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub key: &'static str,
    pub path: String,
}

/// template.yaml's GETs that need no id, plus a patient's page and X-rays (the id comes from a
/// list): what the frontend reads while a developer clicks around.
pub fn reads(today: chrono::NaiveDate) -> Vec<Read> {
    let week = today + chrono::Days::new(7);
    let range = format!("/appointments?from={today}T00:00:00Z&to={week}T00:00:00Z");
    let read = |key, path: &str| Read {
        key,
        path: path.to_owned(),
    };
    vec![
        read("GET /health", "/health"),
        read("GET /patients", PATIENT_LIST),
        read("GET /patients", "/patients?limit=20"),
        read("GET /patients/{id}", PATIENT_DETAIL),
        read("GET /patients/{id}/xrays", "/patients/{id}/xrays"),
        read("GET /appointments", "/appointments"),
        read("GET /appointments", &range),
        read("GET /dashboard", "/dashboard"),
        read("GET /notifications", "/notifications"),
        read("GET /catalogs/{kind}", "/catalogs/procedure"),
        read("GET /catalogs/{kind}", "/catalogs/insurer"),
        read("GET /admin/queues", "/admin/queues"),
        read("GET /admin/jobs", "/admin/jobs"),
        read("GET /admin/cache/stats", "/admin/cache/stats"),
    ]
}

/// One round of the plan: a burst (indexes into the reads), maybe a WebSocket session, a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub burst: Vec<usize>,
    pub websocket: bool,
    pub gap: Duration,
}

pub fn plan_round(rng: &mut impl Rng, reads: usize) -> Round {
    let size = rng.random_range(1..=MAX_BURST);
    let burst = (0..size)
        .map(|_| rng.random_range(0..reads.max(1)))
        .collect();
    let websocket = rng.random_bool(WEBSOCKET_CHANCE);
    let gap_ms = rng.random_range(0..=MAX_GAP.as_millis() as u64);
    Round {
        burst,
        websocket,
        gap: Duration::from_millis(gap_ms),
    }
}

/// What the soak saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    /// Non-2xx answers of the functions, by status.
    pub errors: BTreeMap<u16, u64>,
    /// 5xx the gateway answered itself (`{"message": …}`: 502/503/504, and 500 for a function
    /// that timed out).
    pub gateway: BTreeMap<u16, u64>,
    /// No answer within [`REQUEST_WAIT`], or no connection.
    pub no_answer: u64,
    pub ws_ok: u64,
    pub ws_failed: u64,
}

impl Tally {
    pub fn record(&mut self, reply: Option<&Reply>) {
        self.requests += 1;
        match reply {
            None => self.no_answer += 1,
            Some(reply) if (200..300).contains(&reply.status) => {}
            Some(reply) if reply.status >= 500 && reply.is_gateway_message() => {
                *self.gateway.entry(reply.status).or_default() += 1
            }
            Some(reply) => *self.errors.entry(reply.status).or_default() += 1,
        }
    }

    pub fn server_errors(&self) -> u64 {
        let function_5xx: u64 = self.errors.range(500..).map(|(_, n)| n).sum();
        function_5xx + self.gateway.values().sum::<u64>()
    }

    /// Any 5xx (a gateway timeout among them), a request without answer, a broken session.
    pub fn failed(&self) -> bool {
        self.server_errors() + self.no_answer + self.ws_failed > 0
    }

    pub fn describe(&self) -> String {
        let by_status = |counts: &BTreeMap<u16, u64>| -> String {
            if counts.is_empty() {
                return "none".into();
            }
            let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} x{n}")).collect();
            parts.join(", ")
        };
        format!(
            "{} requests, errors by status: {}; gateway 5xx: {}; no answer: {}; WebSocket sessions {} ok / {} failed",
            self.requests,
            by_status(&self.errors),
            by_status(&self.gateway),
            self.no_answer,
            self.ws_ok,
            self.ws_failed
        )
    }
}

pub async fn run(options: &Options, pool: PgPool) -> anyhow::Result<()> {
    let seed = options.seed.unwrap_or_else(rand::random);
    let stack = Stack::connect(&options.gateway, pool, options.duration).await?;
    let before = stack.functions().await?;
    let reads = served_reads(&before)?;
    eprintln!(
        "soak: {} of browser-like traffic against {} and {}, seed {seed} (--seed {seed} repeats the plan); Ctrl-C ends it early",
        human(options.duration),
        stack.gateway(),
        stack.ws_url()?
    );
    let mut soak = Soak::new(&stack, reads, seed, options.duration);
    soak.run().await;
    let after = stack
        .functions()
        .await
        .context("reading the counters at the end")?;
    report(&soak, &before, &after)
}

/// The reads whose route the gateway serves; a route gone from template.yaml is said, not sent.
fn served_reads(functions: &[FunctionStatus]) -> anyhow::Result<Vec<Read>> {
    let served: Vec<&str> = functions
        .iter()
        .flat_map(|f| f.routes.iter().map(String::as_str))
        .collect();
    let (kept, gone): (Vec<Read>, Vec<Read>) = reads(chrono::Utc::now().date_naive())
        .into_iter()
        .partition(|read| served.contains(&read.key));
    for read in &gone {
        eprintln!(
            "soak: the gateway has no route {}: not sending {}",
            read.key, read.path
        );
    }
    if kept.is_empty() {
        bail!("the gateway serves none of the soak's routes (GET /health, GET /patients, …)");
    }
    Ok(kept)
}

struct Soak<'a> {
    stack: &'a Stack,
    reads: Vec<Read>,
    rng: StdRng,
    tally: Tally,
    /// A patient id from the last list, for the reads that need one.
    patient: Option<String>,
    started: Instant,
    ends: Instant,
    next_progress: Instant,
    stop: watch::Receiver<bool>,
}

impl<'a> Soak<'a> {
    fn new(stack: &'a Stack, reads: Vec<Read>, seed: u64, duration: Duration) -> Self {
        let started = Instant::now();
        Self {
            stack,
            reads,
            rng: StdRng::seed_from_u64(seed),
            tally: Tally::default(),
            patient: None,
            started,
            ends: started + duration,
            next_progress: started + PROGRESS_EVERY,
            stop: stop_on_ctrl_c(),
        }
    }

    fn over(&self) -> bool {
        Instant::now() >= self.ends || *self.stop.borrow()
    }

    async fn run(&mut self) {
        while !self.over() {
            let round = plan_round(&mut self.rng, self.reads.len());
            self.burst(&round.burst).await;
            if round.websocket && !self.over() {
                self.websocket().await;
            }
            self.pause(round.gap).await;
        }
    }

    async fn burst(&mut self, burst: &[usize]) {
        for chunk in burst.chunks(IN_FLIGHT) {
            if self.over() {
                return;
            }
            let paths: Vec<String> = chunk.iter().map(|i| self.path(*i)).collect();
            let calls = paths
                .iter()
                .map(|path| self.stack.call(Method::GET, path, REQUEST_WAIT));
            let replies = join_all(calls).await;
            for (path, reply) in paths.iter().zip(replies) {
                self.record(path, reply);
            }
            self.progress();
        }
    }

    /// The read's path; one that needs a patient before any list gave one lists instead.
    fn path(&self, index: usize) -> String {
        let path = &self.reads[index].path;
        match (&self.patient, path.contains("{id}")) {
            (_, false) => path.clone(),
            (Some(id), true) => path.replace("{id}", id),
            (None, true) => PATIENT_LIST.into(),
        }
    }

    fn record(&mut self, path: &str, reply: Result<Reply, reqwest::Error>) {
        match &reply {
            Ok(reply) if !(200..300).contains(&reply.status) => eprintln!(
                "soak: GET {path} -> {} after {}: {}",
                reply.status,
                human(reply.elapsed),
                reply.excerpt()
            ),
            Ok(_) => {}
            Err(error) => eprintln!("soak: GET {path}: no answer: {error}"),
        }
        let reply = reply.ok();
        if let Some(id) = reply
            .as_ref()
            .filter(|r| r.status == 200 && path.starts_with("/patients?"))
            .and_then(|r| patient_id(&r.body, self.tally.requests))
        {
            self.patient = Some(id);
        }
        self.tally.record(reply.as_ref());
    }

    async fn websocket(&mut self) {
        match self.stack.ws_ping().await {
            Ok(ping) if ping.registered => self.tally.ws_ok += 1,
            Ok(_) => {
                eprintln!("soak: WebSocket pong says the connection is not registered");
                self.tally.ws_failed += 1;
            }
            Err(error) => {
                eprintln!("soak: WebSocket session failed: {error:#}");
                self.tally.ws_failed += 1;
            }
        }
        self.progress();
    }

    /// Sleeps `gap` (or until the end), printing progress on time meanwhile.
    async fn pause(&mut self, gap: Duration) {
        let until = (Instant::now() + gap).min(self.ends);
        while Instant::now() < until && !*self.stop.borrow() {
            let wake = until.min(self.next_progress);
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.stop.changed() => {}
            }
            self.progress();
        }
    }

    fn progress(&mut self) {
        let now = Instant::now();
        if now < self.next_progress {
            return;
        }
        while self.next_progress <= now {
            self.next_progress += PROGRESS_EVERY;
        }
        eprintln!(
            "soak: {} of {}: {}",
            human(now - self.started),
            human(self.ends - self.started),
            self.tally.describe()
        );
    }
}

/// One id of a `{"items": [...]}` page (a different one as the run goes on).
fn patient_id(body: &str, turn: u64) -> Option<String> {
    let page: Value = serde_json::from_str(body).ok()?;
    let items = page.get("items")?.as_array()?;
    let len = u64::try_from(items.len()).ok().filter(|n| *n > 0)?;
    let item = items.get(usize::try_from(turn % len).ok()?)?;
    item.get("id")?.as_str().map(str::to_owned)
}

/// Ctrl-C ends the run at the next request or gap, so the report still prints.
fn stop_on_ctrl_c() -> watch::Receiver<bool> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("soak: interrupted; finishing the requests in flight");
            let _ = stop.send(true);
        }
    });
    stopped
}

fn report(
    soak: &Soak<'_>,
    before: &[FunctionStatus],
    after: &[FunctionStatus],
) -> anyhow::Result<()> {
    let changes = listing::changes(&listing::counters_by_name(before), after);
    for (name, change) in changes
        .iter()
        .filter(|(_, c)| c.restarts() + c.timeouts > 0)
    {
        eprintln!("soak:   {name}: {change}");
    }
    let total = listing::total(changes.values());
    let tally = &soak.tally;
    eprintln!(
        "soak: done after {}: {}; function restarts {} (starts +{}, crashes +{}), timeouts +{}",
        human(Instant::now() - soak.started),
        tally.describe(),
        total.restarts(),
        total.starts,
        total.crashes,
        total.timeouts
    );
    if tally.failed() {
        bail!(
            "soak failed: {} 5xx answers, {} requests without answer, {} failed WebSocket sessions",
            tally.server_errors(),
            tally.no_answer,
            tally.ws_failed
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::reply;

    #[test]
    fn parses_durations() {
        let secs = |text| parse_duration(text).map(|d| d.as_secs()).ok();
        assert_eq!(secs("10m"), Some(600));
        assert_eq!(secs("600s"), Some(600));
        assert_eq!(secs("1h"), Some(3600));
        assert_eq!(secs(" 90 "), Some(90));
        assert_eq!(secs("24h"), Some(86_400));
        for bad in [
            "",
            "0s",
            "25h",
            "1.5h",
            "10x",
            "m",
            "-5s",
            "1h30m",
            "99999999999999999999h",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_options() {
        let args: Vec<String> = ["--duration", "1h", "--seed=7"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = Options::parse(&args).unwrap();
        assert_eq!(options.duration, Duration::from_secs(3600));
        assert_eq!(options.seed, Some(7));
        assert_eq!(options.gateway, stack::DEFAULT_GATEWAY);
        assert!(Options::parse(&["--seed".into(), "x".into()]).is_err());
        assert!(Options::parse(&["--idle".into(), "5".into()]).is_err());
    }

    #[test]
    fn one_seed_one_plan() {
        let plan = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| plan_round(&mut rng, 14))
                .collect::<Vec<_>>()
        };
        assert_eq!(plan(42), plan(42));
        assert_ne!(plan(42), plan(43));
    }

    #[test]
    fn rounds_stay_within_their_bounds() {
        let mut rng = StdRng::seed_from_u64(1);
        let rounds: Vec<Round> = (0..500).map(|_| plan_round(&mut rng, 3)).collect();
        assert!(
            rounds
                .iter()
                .all(|r| (1..=MAX_BURST).contains(&r.burst.len()))
        );
        assert!(rounds.iter().flat_map(|r| &r.burst).all(|i| *i < 3));
        assert!(rounds.iter().all(|r| r.gap <= MAX_GAP));
        // Some gaps outlast the minute of idleness that used to kill the functions.
        assert!(rounds.iter().any(|r| r.gap > Duration::from_secs(60)));
        assert!(rounds.iter().any(|r| r.websocket) && rounds.iter().any(|r| !r.websocket));
    }

    #[test]
    fn tallies_errors_by_origin() {
        let mut tally = Tally::default();
        tally.record(Some(&reply(200, "{}")));
        tally.record(Some(&reply(404, r#"{"title":"Not found","status":404}"#)));
        assert!(!tally.failed());
        tally.record(Some(&reply(
            504,
            r#"{"message":"Endpoint request timed out"}"#,
        )));
        tally.record(Some(&reply(500, r#"{"message":"Internal Server Error"}"#)));
        tally.record(Some(&reply(
            503,
            r#"{"title":"Service unavailable","status":503}"#,
        )));
        tally.record(None);
        assert_eq!(tally.requests, 6);
        assert_eq!(tally.errors, BTreeMap::from([(404, 1), (503, 1)]));
        assert_eq!(tally.gateway, BTreeMap::from([(500, 1), (504, 1)]));
        assert_eq!(tally.server_errors(), 3);
        assert_eq!(tally.no_answer, 1);
        assert!(tally.failed());
        assert!(tally.describe().contains("gateway 5xx: 500 x1, 504 x1"));
    }

    #[test]
    fn a_failed_session_fails_the_soak() {
        let tally = Tally {
            ws_failed: 1,
            ..Tally::default()
        };
        assert!(tally.failed());
    }

    #[test]
    fn reads_need_no_id_but_the_patients() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 5, 4).unwrap();
        let reads = reads(date);
        assert!(reads.iter().all(|r| r.key.starts_with("GET /")));
        assert!(
            reads.iter().any(
                |r| r.path == "/appointments?from=2026-05-04T00:00:00Z&to=2026-05-11T00:00:00Z"
            )
        );
        let with_id: Vec<&str> = reads
            .iter()
            .filter(|r| r.path.contains('{'))
            .map(|r| r.key)
            .collect();
        assert_eq!(with_id, ["GET /patients/{id}", "GET /patients/{id}/xrays"]);
    }

    #[test]
    fn takes_a_patient_id_from_a_page() {
        let page = r#"{"items":[{"id":"a"},{"id":"b"}],"next_cursor":null}"#;
        assert_eq!(patient_id(page, 0).as_deref(), Some("a"));
        assert_eq!(patient_id(page, 3).as_deref(), Some("b"));
        assert_eq!(patient_id(r#"{"items":[]}"#, 0), None);
        assert_eq!(patient_id("not json", 0), None);
    }
}
