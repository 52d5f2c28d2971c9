//! `worker-model`: a day of job enqueues replayed through a model of how the `worker` function
//! runs in the cloud, to see how long a job waits before it starts and what the worker costs,
//! for today's schedule and for the alternatives (issue 16, §5). A model, not a measurement: it
//! knows the template's settings, Lambda's rules for a throttled asynchronous invocation and
//! the drain's rules (`shared::queue::worker`), and nothing of PostgreSQL or Redis, whose part
//! in a job's start (a claim: milliseconds) is left out.
//!
//! What it models:
//! - **Before** (template.yaml until the woken worker): EventBridge invoked the worker every
//!   minute, asynchronously, with reserved concurrency 1, so while a drain ran the next ticks
//!   were throttled, and Lambda retries a throttled event with growing pauses until it is
//!   `MAX_EVENT_AGE` old, then drops it. A drain claimed jobs for `Timeout - margin` and then
//!   returned. A job enqueued while a drain claimed started at once (the drain waits on a
//!   blocking `BLMOVE`); one enqueued between two drains waited for the next.
//! - **Two at a time**: the same with reserved concurrency 2, so drains overlap.
//! - **Woken** (template.yaml now, `shared::queue::presence`): a drain stops once idle for
//!   `IDLE_STOP`; an enqueue that finds no drain alive invokes the worker (a warm or cold start
//!   later it runs); a drain that reaches its time limit with work left invokes the next. There
//!   is no schedule: the scheduler's minute maintenance wakes a worker only for jobs left ready,
//!   which in this model (no lost wake) never happens. A backlog beyond one drain's room wakes
//!   more drains in the code; the model gives one drain room enough, so waits here are those of
//!   a start, not of a queue.
//!
//! Prices: Lambda on arm64 in eu-west-1, $0.0000133334 per GB-second and $0.20 per million
//! requests (x86 is 25 % dearer), 1,024 MB as template.yaml gives the worker.

use anyhow::bail;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};

/// The worker's timeout, margin, memory, idle stop and event age (template.yaml,
/// WorkerFunction), and the schedule and reserved concurrency it had before it was woken.
const TICK: f64 = 60.0;
const TIMEOUT: f64 = 300.0;
const DEADLINE_MARGIN: f64 = 30.0;
const MEMORY_GB: f64 = 1.0;
const RESERVED_BEFORE: usize = 1;
const MAX_EVENT_AGE: f64 = 60.0;
/// When Lambda tries a throttled asynchronous event again, after its first attempt (its pauses
/// grow; the exact ones are Lambda's own, this is their shape).
const THROTTLE_RETRIES: [f64; 6] = [1.0, 3.0, 7.0, 15.0, 31.0, 63.0];
/// Start-up of an invocation: a warm environment, and a cold one (a Rust binary in a VPC).
const WARM_START: f64 = 0.05;
const COLD_START: f64 = 0.4;
/// An environment idle longer than this starts cold.
const ENVIRONMENT_KEPT: f64 = 600.0;
/// The woken worker's idle stop (`WORKER_IDLE_STOP_SECONDS`).
const IDLE_STOP: f64 = 10.0;
/// Prices (see the header).
const PRICE_GB_SECOND: f64 = 0.000_013_333_4;
const PRICE_REQUEST: f64 = 0.000_000_2;
const DAYS_PER_MONTH: f64 = 30.0;
const DAY: f64 = 86_400.0;

/// The day replayed: clinics open 9:00 to 20:00 (one time zone), jobs arriving at random
/// (Poisson) while they are open, each running for its kind's time.
#[derive(Clone, Debug)]
pub struct Load {
    pub clinics: u32,
    /// X-ray analyses per clinic per day (about 1.5 s each at 1 GB).
    pub xrays_per_clinic: u32,
    /// Insurance reports per clinic per day (about 0.8 s each).
    pub reports_per_clinic: u32,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            clinics: 1_000,
            xrays_per_clinic: 20,
            reports_per_clinic: 5,
        }
    }
}

/// One job: when it was enqueued and how long its handler runs (seconds of the day).
#[derive(Clone, Copy, Debug)]
struct Job {
    enqueued: f64,
    runs: f64,
}

fn day_of_jobs(load: &Load, rng: &mut StdRng) -> Vec<Job> {
    const OPEN: f64 = 9.0 * 3_600.0;
    const CLOSE: f64 = 20.0 * 3_600.0;
    let per_second = f64::from(load.clinics * (load.xrays_per_clinic + load.reports_per_clinic))
        / (CLOSE - OPEN);
    let mut jobs = Vec::new();
    if per_second <= 0.0 {
        return jobs;
    }
    let gaps = Exp::new(per_second).expect("a positive rate");
    let xray_share = f64::from(load.xrays_per_clinic)
        / f64::from(load.xrays_per_clinic + load.reports_per_clinic);
    let mut at = OPEN;
    loop {
        at += gaps.sample(rng);
        if at >= CLOSE {
            break;
        }
        let runs = if rng.random_bool(xray_share) {
            rng.random_range(1.0..2.0)
        } else {
            rng.random_range(0.5..1.1)
        };
        jobs.push(Job { enqueued: at, runs });
    }
    jobs
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Strategy {
    /// EventBridge every minute, drains of `Timeout - margin`, this many at most at once.
    Scheduled { reserved: usize },
    /// Drains that stop when idle, woken by an enqueue, chained at their time limit.
    Woken,
}

impl Strategy {
    pub fn name(self) -> String {
        match self {
            Strategy::Scheduled { reserved: 1 } => "before: every minute, one at a time".into(),
            Strategy::Scheduled { reserved } => format!("every minute, {reserved} at a time"),
            Strategy::Woken => "now: woken by an enqueue, idle stop 10 s".into(),
        }
    }
}

/// What a day through a strategy came to.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Each job's wait from its enqueue to its start, in seconds.
    pub waits: Vec<f64>,
    pub invocations: u64,
    /// Seconds invocations ran, all together.
    pub busy_seconds: f64,
}

impl Outcome {
    /// The `q` quantile (0..=1) of the waits, in seconds.
    pub fn wait_quantile(&self, q: f64) -> f64 {
        if self.waits.is_empty() {
            return 0.0;
        }
        let mut sorted = self.waits.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index]
    }

    pub fn monthly_cost(&self) -> f64 {
        DAYS_PER_MONTH
            * (self.busy_seconds * MEMORY_GB * PRICE_GB_SECOND
                + self.invocations as f64 * PRICE_REQUEST)
    }
}

/// A drain: when it claims jobs (from, until).
#[derive(Clone, Copy, Debug)]
struct Window {
    from: f64,
    until: f64,
}

fn simulate(strategy: Strategy, jobs: &[Job], rng: &mut StdRng) -> Outcome {
    match strategy {
        Strategy::Scheduled { reserved } => scheduled(reserved, jobs, rng),
        Strategy::Woken => woken(jobs),
    }
}

/// The drains of a day of minute ticks with `reserved` at most at once.
fn scheduled_windows(reserved: usize, rng: &mut StdRng) -> (Vec<Window>, u64, f64) {
    let claiming = TIMEOUT - DEADLINE_MARGIN;
    let mut running: Vec<f64> = Vec::new(); // end times
    let mut windows = Vec::new();
    let (mut invocations, mut busy) = (0_u64, 0.0);
    let mut last_end = f64::NEG_INFINITY;
    let mut tick = 0.0;
    while tick < DAY {
        let sent = tick + rng.random_range(0.0..1.0);
        // The first attempt, then Lambda's retries of a throttled event, while it is young enough.
        let attempts = std::iter::once(sent).chain(
            THROTTLE_RETRIES
                .iter()
                .map(|pause| sent + pause)
                .filter(|at| *at - sent <= MAX_EVENT_AGE),
        );
        for at in attempts {
            running.retain(|end| *end > at);
            if running.len() < reserved {
                let start = at
                    + if at - last_end > ENVIRONMENT_KEPT {
                        COLD_START
                    } else {
                        WARM_START
                    };
                let end = start + claiming;
                windows.push(Window {
                    from: start,
                    until: end,
                });
                running.push(end);
                last_end = last_end.max(end);
                invocations += 1;
                busy += end - at;
                break;
            }
        }
        tick += TICK;
    }
    windows.sort_by(|a, b| a.from.total_cmp(&b.from));
    (windows, invocations, busy)
}

fn scheduled(reserved: usize, jobs: &[Job], rng: &mut StdRng) -> Outcome {
    let (windows, invocations, busy_seconds) = scheduled_windows(reserved, rng);
    let waits = jobs
        .iter()
        .map(|job| {
            // Claimed at once by a drain claiming then, else at the next drain's start.
            if windows
                .iter()
                .any(|w| w.from <= job.enqueued && job.enqueued < w.until)
            {
                return 0.0;
            }
            windows
                .iter()
                .find(|w| w.from > job.enqueued)
                .map_or(DAY - job.enqueued, |w| w.from - job.enqueued)
        })
        .collect();
    Outcome {
        waits,
        invocations,
        busy_seconds,
    }
}

/// The woken worker's drains as the day goes: the one alive now, and what the ended ones cost.
#[derive(Default)]
struct Drains {
    /// The alive drain's invocation start, and when it stops if nothing else comes.
    alive: Option<(f64, f64)>,
    /// When the last drain ended (an environment idle long enough starts cold).
    last_end: Option<f64>,
    invocations: u64,
    busy: f64,
}

impl Drains {
    /// Ends the alive drain if it stops by `at`, counting its invocations (one per claiming
    /// period: a drain at its time limit invokes the next) and its time.
    fn settle(&mut self, at: f64) {
        if let Some((from, stops)) = self.alive
            && stops <= at
        {
            let claiming = TIMEOUT - DEADLINE_MARGIN;
            self.invocations += ((stops - from) / claiming).ceil().max(1.0) as u64;
            self.busy += stops - from;
            self.last_end = Some(stops);
            self.alive = None;
        }
    }

    /// When a drain invoked at `at` starts claiming.
    fn started(&self, at: f64) -> f64 {
        match self.last_end {
            Some(end) if at - end <= ENVIRONMENT_KEPT => at + WARM_START,
            _ => at + COLD_START,
        }
    }

    /// A job enqueued now: it starts at once in the alive drain, or wakes one. Its start.
    fn enqueue(&mut self, job: Job) -> f64 {
        self.settle(job.enqueued);
        let (from, stops, started) = match self.alive {
            Some((from, stops)) => (from, stops, job.enqueued),
            None => {
                let started = self.started(job.enqueued);
                (started, 0.0, started)
            }
        };
        self.alive = Some((from, stops.max(started + job.runs + IDLE_STOP)));
        started
    }
}

fn woken(jobs: &[Job]) -> Outcome {
    let mut drains = Drains::default();
    let waits = jobs
        .iter()
        .map(|job| drains.enqueue(*job) - job.enqueued)
        .collect();
    drains.settle(f64::INFINITY);
    Outcome {
        waits,
        invocations: drains.invocations,
        busy_seconds: drains.busy,
    }
}

/// Options of `pulso-devtool worker-model`.
#[derive(Clone, Debug)]
pub struct Options {
    pub load: Load,
    pub seed: u64,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut options = Options {
            load: Load::default(),
            seed: 7,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().map(|value| value.parse::<u64>());
            match (flag.as_str(), value) {
                ("--clinics", Some(Ok(n))) => options.load.clinics = u32::try_from(n)?,
                ("--xrays", Some(Ok(n))) => options.load.xrays_per_clinic = u32::try_from(n)?,
                ("--reports", Some(Ok(n))) => options.load.reports_per_clinic = u32::try_from(n)?,
                ("--seed", Some(Ok(n))) => options.seed = n,
                _ => bail!(
                    "usage: pulso-devtool worker-model [--clinics N] [--xrays N] [--reports N] [--seed N]"
                ),
            }
        }
        Ok(options)
    }
}

const STRATEGIES: [Strategy; 3] = [
    Strategy::Scheduled {
        reserved: RESERVED_BEFORE,
    },
    Strategy::Scheduled { reserved: 2 },
    Strategy::Woken,
];

/// Replays the day (and an idle day) through each strategy and prints the figures.
pub fn run(options: &Options) {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let jobs = day_of_jobs(&options.load, &mut rng);
    println!(
        "a day of {} jobs: {} clinics × ({} X-ray analyses + {} reports), 9:00-20:00, seed {}",
        jobs.len(),
        options.load.clinics,
        options.load.xrays_per_clinic,
        options.load.reports_per_clinic,
        options.seed
    );
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>12} {:>14} {:>14}",
        "strategy",
        "wait p50",
        "wait p99",
        "wait max",
        "invocations",
        "$/month load",
        "$/month idle"
    );
    for strategy in STRATEGIES {
        let loaded = simulate(strategy, &jobs, &mut StdRng::seed_from_u64(options.seed));
        let idle = simulate(strategy, &[], &mut StdRng::seed_from_u64(options.seed));
        println!(
            "{:<40} {:>8.2}s {:>8.2}s {:>8.2}s {:>12} {:>14.2} {:>14.2}",
            strategy.name(),
            loaded.wait_quantile(0.5),
            loaded.wait_quantile(0.99),
            loaded.wait_quantile(1.0),
            loaded.invocations,
            loaded.monthly_cost(),
            idle.monthly_cost(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(strategy: Strategy, load: &Load) -> Outcome {
        let mut rng = StdRng::seed_from_u64(1);
        let jobs = day_of_jobs(load, &mut rng);
        simulate(strategy, &jobs, &mut rng)
    }

    #[test]
    fn the_model_knows_the_templates_worker() {
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        )
        .expect("template.yaml");
        let worker = &template[template.find("  WorkerFunction:").expect("the worker")..];
        let worker = &worker[..worker.find("\n  WorkerLogGroup:").expect("its end")];
        for setting in [
            format!("Timeout: {TIMEOUT}"),
            format!("WORKER_DEADLINE_MARGIN_SECONDS: \"{DEADLINE_MARGIN}\""),
            format!("WORKER_IDLE_STOP_SECONDS: \"{IDLE_STOP}\""),
            format!("MaximumEventAgeInSeconds: {MAX_EVENT_AGE}"),
            "MemorySize: 1024".to_owned(),
        ] {
            assert!(
                worker.contains(&setting),
                "the worker no longer has {setting}"
            );
        }
        assert!(
            !worker.contains("Schedule:"),
            "the worker is scheduled again: the model's woken worker has no schedule"
        );
    }

    #[test]
    fn every_job_starts_once_after_it_was_enqueued_and_within_a_day() {
        let load = Load {
            clinics: 50,
            ..Load::default()
        };
        let jobs = day_of_jobs(&load, &mut StdRng::seed_from_u64(3));
        // About 50 × 25 jobs, all in opening hours.
        assert!((1_000..1_500).contains(&jobs.len()), "{}", jobs.len());
        for strategy in STRATEGIES {
            let outcome = simulate(strategy, &jobs, &mut StdRng::seed_from_u64(3));
            assert_eq!(outcome.waits.len(), jobs.len(), "{strategy:?}");
            assert!(
                outcome.waits.iter().all(|wait| (0.0..DAY).contains(wait)),
                "{strategy:?}"
            );
        }
    }

    #[test]
    fn before_a_job_between_two_drains_waited_for_the_next_and_an_idle_month_still_cost() {
        let today = outcome(
            Strategy::Scheduled {
                reserved: RESERVED_BEFORE,
            },
            &Load::default(),
        );
        // A drain claims for 270 s of each 300 s or so: most jobs start at once, some wait up
        // to the next tick.
        assert_eq!(today.wait_quantile(0.5), 0.0);
        assert!(today.wait_quantile(1.0) > 1.0 && today.wait_quantile(1.0) <= TICK + 1.0);
        let idle = simulate(
            Strategy::Scheduled { reserved: 1 },
            &[],
            &mut StdRng::seed_from_u64(1),
        );
        assert!(idle.monthly_cost() > 20.0, "{}", idle.monthly_cost());
    }

    #[test]
    fn a_woken_worker_starts_every_job_within_a_cold_start_and_idles_for_free() {
        let woken = outcome(Strategy::Woken, &Load::default());
        assert!(woken.wait_quantile(1.0) <= COLD_START + 1e-9);
        let idle = simulate(Strategy::Woken, &[], &mut StdRng::seed_from_u64(1));
        assert_eq!(idle.monthly_cost(), 0.0);
        assert_eq!(idle.invocations, 0);
    }
}
