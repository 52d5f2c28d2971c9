//! What one drain counted, added to by the feeder, the recorder and housekeeping, and read
//! once into its [`DrainReport`].

use super::{DrainReport, StopReason};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub(super) struct Counters {
    pub(super) claimed: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) succeeded: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) dead: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) promoted: AtomicU64,
    pub(super) reaped: AtomicU64,
    pub(super) swept: AtomicU64,
    pub(super) woke: AtomicU64,
}

impl Counters {
    pub(super) fn add(&self, counter: &AtomicU64, count: usize) {
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }

    pub(super) fn report(
        &self,
        stopped_by: StopReason,
        took: Duration,
        abandoned: u64,
    ) -> DrainReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        DrainReport {
            stopped_by,
            duration_ms: took.as_millis() as u64,
            claimed: load(&self.claimed),
            batches: load(&self.batches),
            succeeded: load(&self.succeeded),
            retried: load(&self.retried),
            dead: load(&self.dead),
            duplicates: load(&self.duplicates),
            stale: load(&self.stale),
            abandoned,
            promoted: load(&self.promoted),
            reaped: load(&self.reaped),
            swept: load(&self.swept),
            woke: load(&self.woke),
        }
    }
}
