//! One function's execution environments and its queue of invocations: the state machine that
//! pairs an invocation with an instance waiting on `/next`, and the counters `/_local/functions`
//! shows. Everything here runs under the function's lock and never awaits; the processes
//! themselves are in `process.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::process::ProcessHandle;

/// What an invocation ended with, as the Invoke API reports it.
#[derive(Debug)]
pub enum Outcome {
    /// The handler's output, verbatim.
    Returned(Bytes),
    /// `{"errorType": …, "errorMessage": …}`: the handler's error, or the host's when the
    /// instance timed out or exited.
    Failed(Bytes),
}

impl Outcome {
    /// A failure the host itself reports, in the shape Lambda uses.
    pub fn host_error(error_type: &str, message: &str) -> Self {
        Self::Failed(Bytes::from(
            json!({ "errorType": error_type, "errorMessage": message }).to_string(),
        ))
    }
}

/// How long an instance that answered is expected back in `/next` before a queued invocation
/// starts another instance instead of waiting for it.
pub const BETWEEN_GRACE: Duration = Duration::from_millis(200);

/// An invocation waiting for an instance.
pub struct Pending {
    pub request_id: String,
    pub event: Bytes,
    pub reply: oneshot::Sender<Outcome>,
}

/// What `/next` hands to an instance.
pub struct Delivery {
    pub request_id: String,
    pub event: Bytes,
    pub deadline_ms: u64,
}

pub enum State {
    /// Spawned; has not called `/next` yet (its init phase).
    Starting,
    /// Parked in `/next`.
    Idle { waiter: oneshot::Sender<Delivery> },
    /// Running an invocation; `reply` answers its caller.
    Busy {
        request_id: String,
        reply: oneshot::Sender<Outcome>,
        since: Instant,
    },
    /// Answered its invocation and has not called `/next` again yet.
    Between { since: Instant },
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle { .. } => "idle",
            Self::Busy { .. } => "busy",
            Self::Between { .. } => "between",
        }
    }
}

pub struct Instance {
    pub process: ProcessHandle,
    pub state: State,
    pub started: Instant,
    pub last_used: Instant,
    pub invocations: u64,
    /// Replace it once its current invocation ends (a rebuild produced a new binary).
    pub retiring: bool,
    /// SIGSTOPped by the `hang` fault.
    pub frozen: bool,
}

/// Why the host stops an instance: decides whether its exit counts as a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    TimedOut,
    Rebuilt,
    IdleTooLong,
    Wedged,
    Fault,
    Shutdown,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimedOut => "timed out",
            Self::Rebuilt => "rebuilt",
            Self::IdleTooLong => "idle too long",
            Self::Wedged => "wedged between invocations",
            Self::Fault => "crash fault",
            Self::Shutdown => "gateway shutdown",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub invocations: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub crashes: u64,
    pub starts: u64,
}

/// A function's instances (by number) and queue.
#[derive(Default)]
pub struct Pool {
    pub instances: BTreeMap<u64, Instance>,
    pub queue: VecDeque<Pending>,
    pub counters: Counters,
    pub next_number: u64,
}

/// An invocation handed to an instance: the caller arms its timeout.
pub struct Started {
    pub instance: u64,
    pub request_id: String,
}

impl Pool {
    /// Pairs queued invocations with instances parked in `/next`, oldest first. Invocations
    /// whose caller went away are dropped unseen: nobody would read their answer.
    pub fn match_waiting(&mut self, timeout: Duration) -> Vec<Started> {
        let mut started = Vec::new();
        loop {
            while self.queue.front().is_some_and(|p| p.reply.is_closed()) {
                self.queue.pop_front();
            }
            let Some(number) = self.idle_instance() else {
                break;
            };
            let Some(pending) = self.queue.pop_front() else {
                break;
            };
            let Some(instance) = self.instances.get_mut(&number) else {
                break;
            };
            let between = State::Between {
                since: Instant::now(),
            };
            let State::Idle { waiter } = std::mem::replace(&mut instance.state, between) else {
                self.queue.push_front(pending);
                break;
            };
            let delivery = Delivery {
                request_id: pending.request_id.clone(),
                event: pending.event.clone(),
                deadline_ms: deadline_ms(timeout),
            };
            if waiter.send(delivery).is_err() {
                // Its `/next` connection is gone: the process is dying; its exit is handled
                // by the monitor. The invocation goes back to the front of the queue.
                self.queue.push_front(pending);
                continue;
            }
            instance.state = State::Busy {
                request_id: pending.request_id.clone(),
                reply: pending.reply,
                since: Instant::now(),
            };
            instance.invocations += 1;
            instance.last_used = Instant::now();
            self.counters.invocations += 1;
            started.push(Started {
                instance: number,
                request_id: pending.request_id,
            });
        }
        started
    }

    fn idle_instance(&self) -> Option<u64> {
        self.instances
            .iter()
            .filter(|(_, i)| !i.retiring)
            .find(|(_, i)| matches!(&i.state, State::Idle { waiter } if !waiter.is_closed()))
            .map(|(number, _)| *number)
    }

    /// How many new instances the queue needs: one per invocation that no instance that is
    /// starting, or that has just answered and is about to ask for more, will take; within
    /// `max` instances. An instance that answered but has not come back within
    /// `BETWEEN_GRACE` is not counted on (it may be wedged): the caller re-checks after that.
    pub fn instances_to_start(&self, max: usize) -> usize {
        let waiting = self.queue.iter().filter(|p| !p.reply.is_closed()).count();
        let coming = self
            .instances
            .values()
            .filter(|i| !i.retiring)
            .filter(|i| match i.state {
                State::Starting => true,
                State::Between { since } => since.elapsed() < BETWEEN_GRACE,
                _ => false,
            })
            .count();
        let live = self.instances.values().filter(|i| !i.retiring).count();
        waiting.saturating_sub(coming).min(max.saturating_sub(live))
    }

    /// The instance running `request_id`, if it still is.
    pub fn running(&mut self, number: u64, request_id: &str) -> Option<&mut Instance> {
        self.instances
            .get_mut(&number)
            .filter(|i| matches!(&i.state, State::Busy { request_id: id, .. } if id == request_id))
    }

    /// Ends the instance's current invocation with `outcome`; false when it had none.
    pub fn finish(&mut self, number: u64, outcome: Outcome) -> bool {
        let Some(instance) = self.instances.get_mut(&number) else {
            return false;
        };
        let between = State::Between {
            since: Instant::now(),
        };
        let State::Busy { reply, .. } = std::mem::replace(&mut instance.state, between) else {
            return false;
        };
        if matches!(outcome, Outcome::Failed(_)) {
            self.counters.errors += 1;
        }
        // The caller may have gone away; the instance is free either way.
        let _ = reply.send(outcome);
        instance.last_used = Instant::now();
        true
    }

    /// Fails every queued invocation, e.g. when the function cannot start at all.
    pub fn fail_queue(&mut self, error_type: &str, message: &str) {
        self.counters.errors += self.queue.len() as u64;
        for pending in self.queue.drain(..) {
            let _ = pending.reply.send(Outcome::host_error(error_type, message));
        }
    }

    /// After an instance failed to start: fails the queue unless another instance will take
    /// it, so a function that cannot start is not restarted in a loop.
    pub fn fail_queue_if_none_left(&mut self, error_type: &str, message: &str) {
        if self.instances.values().all(|i| i.retiring) {
            self.fail_queue(error_type, message);
        }
    }

    pub fn status(&self) -> Value {
        let instances: Vec<Value> = self
            .instances
            .iter()
            .map(|(number, i)| {
                json!({
                    "number": number,
                    "pid": i.process.pid(),
                    "state": if i.frozen { "frozen" } else { i.state.name() },
                    "invocations": i.invocations,
                    "retiring": i.retiring,
                    "up_secs": i.started.elapsed().as_secs(),
                })
            })
            .collect();
        let c = self.counters;
        json!({
            "instances": instances,
            "queued": self.queue.len(),
            "invocations": c.invocations,
            "errors": c.errors,
            "timeouts": c.timeouts,
            "crashes": c.crashes,
            "starts": c.starts,
        })
    }
}

/// `Lambda-Runtime-Deadline-Ms`: when the invocation times out, in Unix milliseconds, as on AWS
/// (so the worker's "stop taking jobs before the deadline" logic works locally too).
fn deadline_ms(timeout: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now + timeout).as_millis() as u64
}
