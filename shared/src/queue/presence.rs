//! Which drains are alive, and waking the worker when jobs are ready and none is.
//!
//! On Lambda a drain is one invocation of the worker function. It *joins* `drains` (a ZSET of
//! drain ids scored by when their presence lapses), renews its presence every second, and
//! *leaves* once it has had nothing to run for `WORKER_IDLE_STOP_SECONDS`: an idle worker costs
//! nothing. Whatever makes jobs ready *wakes* the worker (an asynchronous Lambda `Invoke`,
//! `waker.rs`) when no drain is alive:
//! - an enqueue, in the same step as its push (`enqueue.lua`: no round trip more on the
//!   request's path), and a replay;
//! - the scheduler's minute maintenance, which promotes due retries, requeues expired leases and
//!   sweeps the outbox (the safety net: a lost wake, jobs Redis lost);
//! - a drain with more jobs ready than it has room for wakes another, up to
//!   `WORKER_MAX_DRAINS`;
//! - a drain at its deadline with work left hands over: it wakes the next before it returns.
//!
//! One wake is in flight at a time (`waking`, a token with a TTL that the woken drain clears on
//! arrival, or that lapses if it never comes), so a burst of enqueues invokes the worker once.
//! No job falls between a drain leaving and an enqueue: `leave.lua` looks for work in the same
//! step as the drain leaves, and an enqueue's wake check runs in the step of its push, so one of
//! the two sees the other. Presence and retry times use the callers' clocks, like leases
//! (`now_ms`).

use super::{Queue, QueueError, now_ms};
use ::redis::Script;
use serde::Serialize;
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

static JOIN: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("join.lua")));
static LEAVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("leave.lua")));
static WAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("wakes.lua"),
        "\n",
        include_str!("wake.lua")
    ))
});

/// A drain that stops renewing (frozen, killed) counts as gone after this.
const PRESENCE_LASTS: Duration = Duration::from_secs(5);
/// How often a drain renews its presence.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(1);
/// A wake that has not arrived by then is taken as lost: another may be sent.
pub(super) const WAKE_ARRIVES_WITHIN: Duration = Duration::from_secs(10);

/// Why a worker is woken (its invocation's `reason`, and the log's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeReason {
    /// A job was enqueued (or replayed) with no drain alive.
    Enqueue,
    /// The minute maintenance found jobs ready with no drain alive.
    Maintenance,
    /// A drain has more jobs ready than room.
    Backlog,
    /// A drain reached its deadline with work left.
    Handover,
}

/// A drain's place among the drains alive.
#[derive(Clone, Debug)]
pub struct Presence {
    id: String,
    /// Whether it wakes another drain when it has more ready than room (Lambda drains do; a
    /// `worker --loop` cannot start a second loop).
    pub(crate) scales_out: bool,
}

/// Why a drain leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaving {
    /// Nothing to run for the idle stop: it stays if work came as it left.
    Idle,
    /// Its deadline: it hands over if work is left.
    Deadline,
    /// Stopped (SIGTERM): it leaves whatever there is.
    Quit,
}

/// What leaving did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    Gone,
    /// Work came as it left: it is back in and drains on.
    Stayed,
    /// It woke the next drain.
    HandedOver,
}

impl Queue {
    /// Joins the drains alive, unless `WORKER_MAX_DRAINS` are (`limit`: `None`, no limit).
    /// `wake` is the token the invocation came with: its wake has arrived.
    pub async fn join(
        &self,
        wake: Option<&str>,
        limit: Option<u32>,
        scales_out: bool,
    ) -> Result<Option<Presence>, QueueError> {
        let presence = Presence {
            id: Uuid::new_v4().to_string(),
            scales_out,
        };

        let mut connection = self.redis.connection().await?;
        let joined: i64 = JOIN
            .key(&self.queue_keys.drains)
            .key(&self.queue_keys.waking)
            .arg(&presence.id)
            .arg(now_ms())
            .arg(PRESENCE_LASTS.as_millis() as u64)
            .arg(limit.unwrap_or(0))
            .arg(wake.unwrap_or(""))
            .invoke_async(&mut connection)
            .await?;
        Ok((joined == 1).then_some(presence))
    }

    /// Keeps a drain counted as alive for another `PRESENCE_LASTS`, if it still is (`XX`): a
    /// renewal racing the drain's leave must not bring it back, or enqueues would see a drain
    /// that is gone and wake none.
    pub(crate) async fn renew_presence(&self, presence: &Presence) -> Result<(), QueueError> {
        let mut connection = self.redis.connection().await?;
        let _: i64 = ::redis::cmd("ZADD")
            .arg(&self.queue_keys.drains)
            .arg("XX")
            .arg(now_ms() + PRESENCE_LASTS.as_millis() as u64)
            .arg(&presence.id)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Leaves the drains alive (see `Leaving` for what happens to work left), waking the next
    /// drain on a handover.
    pub async fn leave(&self, presence: &Presence, leaving: Leaving) -> Result<Left, QueueError> {
        let token = Uuid::new_v4().to_string();
        let now = now_ms();
        let keys = &self.queue_keys;
        let mut connection = self.redis.connection().await?;
        let left: String = LEAVE
            .key(&keys.drains)
            .key(&keys.waking)
            .key(&keys.fresh)
            .key(&keys.active)
            .key(&keys.delayed)
            .arg(&presence.id)
            .arg(now)
            .arg(PRESENCE_LASTS.as_millis() as u64)
            .arg(match leaving {
                Leaving::Idle => "idle",
                Leaving::Deadline => "deadline",
                Leaving::Quit => "quit",
            })
            .arg(now + self.config.worker_idle_stop.as_millis() as u64)
            .arg(&token)
            .arg(WAKE_ARRIVES_WITHIN.as_millis() as u64)
            .invoke_async(&mut connection)
            .await?;
        Ok(match left.as_str() {
            "stay" => Left::Stayed,
            "wake" => {
                self.invoke_worker(&token, WakeReason::Handover).await;
                Left::HandedOver
            }
            _ => Left::Gone,
        })
    }

    /// Wakes the worker if jobs are ready, fewer than `wanted` drains are alive and no wake is
    /// on its way. Never fails: a wake that cannot be sent is logged and tried again once it
    /// lapses (`invoke_worker`). Without a worker function to wake (tests, `worker
    /// --loop`) it does nothing. Whether a worker was invoked.
    pub async fn wake(&self, wanted: u32, reason: WakeReason) -> bool {
        if self.waker.is_none() {
            return false;
        }
        let token = Uuid::new_v4().to_string();
        match self.wake_script(wanted, &token).await {
            Ok(true) => self.invoke_worker(&token, reason).await,
            Ok(false) => false,
            Err(error) => {
                tracing::warn!(
                    error = %crate::telemetry::ErrorChain(&error),
                    ?reason,
                    "could not check whether to wake the worker; the scheduler's maintenance will"
                );
                false
            }
        }
    }

    async fn wake_script(&self, wanted: u32, token: &str) -> Result<bool, QueueError> {
        let keys = &self.queue_keys;
        let mut connection = self.redis.connection().await?;
        let wake: i64 = WAKE
            .key(&keys.drains)
            .key(&keys.waking)
            .key(&keys.fresh)
            .key(&keys.active)
            .arg(now_ms())
            .arg(wanted)
            .arg(token)
            .arg(WAKE_ARRIVES_WITHIN.as_millis() as u64)
            .invoke_async(&mut connection)
            .await?;
        Ok(wake == 1)
    }

    /// Invokes the worker with the wake `token`. An invocation that cannot be sent leaves its
    /// token in flight until it lapses: under a lasting failure (no path to Lambda, a missing
    /// permission) one call every `WAKE_ARRIVES_WITHIN` pays for it, not every enqueue; the
    /// next check after the lapse (an enqueue, the maintenance) tries again.
    pub(super) async fn invoke_worker(&self, token: &str, reason: WakeReason) -> bool {
        let Some(waker) = &self.waker else {
            return false;
        };
        match waker.invoke(token, reason).await {
            Ok(()) => {
                tracing::info!(?reason, "worker woken");
                true
            }
            Err(error) => {
                tracing::warn!(
                    %error,
                    ?reason,
                    retry_in_seconds = WAKE_ARRIVES_WITHIN.as_secs(),
                    "could not wake the worker"
                );
                false
            }
        }
    }

    /// How many drains are alive now (their presence has not lapsed).
    pub async fn drains_alive(&self) -> Result<u64, QueueError> {
        let mut connection = self.redis.connection().await?;
        Ok(::redis::cmd("ZCOUNT")
            .arg(&self.queue_keys.drains)
            .arg(format!("({}", now_ms()))
            .arg("+inf")
            .query_async(&mut connection)
            .await?)
    }
}
