//! Admission: how many jobs this worker may start right now. Every job takes one of
//! `WORKER_CONCURRENCY` equal slots and the feeder claims exactly as many jobs as it was
//! admitted slots, so this is the one place that decides how much work fits in the worker.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Under a backlog, how long a claim may wait for busy slots to free up so that it takes a
/// batch; idle, it never waits.
const BACKLOG_GATHER: Duration = Duration::from_millis(1);

/// The right to run one job, held by its task until the handler ends.
pub(super) type Slot = OwnedSemaphorePermit;

/// The worker's handler slots, and how many of them one claim may fill.
pub(super) struct Slots {
    free: Arc<Semaphore>,
    concurrency: usize,
    batch: usize,
}

impl Slots {
    pub(super) fn new(concurrency: usize, batch: usize) -> Self {
        Self {
            free: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            batch,
        }
    }

    /// Waits for one free slot. `None` only if the slots were closed, which nothing does.
    pub(super) async fn first(&self) -> Option<Slot> {
        self.free.clone().acquire_owned().await.ok()
    }

    /// `first` and every other free slot, up to a batch.
    pub(super) async fn fill(&self, first: Slot, backlog: bool) -> Vec<Slot> {
        let mut slots = vec![first];
        let full = self.batch.min(self.concurrency);
        if backlog && full > 1 {
            // Under a backlog, give the handlers that are finishing a moment (at most
            // BACKLOG_GATHER) to hand their slots back, so one round trip claims a batch
            // instead of one job. Jobs are waiting anyway; an idle queue never waits here.
            let gather = tokio::time::timeout(
                BACKLOG_GATHER,
                self.free
                    .clone()
                    .acquire_many_owned(u32::try_from(full - 1).unwrap_or(u32::MAX)),
            )
            .await;
            if let Ok(Ok(mut gathered)) = gather {
                while gathered.num_permits() > 1 {
                    match gathered.split(1) {
                        Some(one) => slots.push(one),
                        None => break,
                    }
                }
                slots.push(gathered);
            }
        }
        while slots.len() < self.batch {
            match self.free.clone().try_acquire_owned() {
                Ok(permit) => slots.push(permit),
                Err(_) => break,
            }
        }
        slots
    }

    /// No slot taken: nothing runs here.
    pub(super) fn all_free(&self) -> bool {
        self.free.available_permits() >= self.concurrency
    }
}
