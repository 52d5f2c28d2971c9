//! Admission: how much work this worker may run right now, by count and by memory.
//!
//! Every job takes one of `WORKER_CONCURRENCY` slots, and the feeder claims exactly as many
//! jobs as it was admitted slots. Before its handler runs, a job also reserves its kind's peak
//! memory (`JobKind::with_peak_memory_mib`) from the worker's budget: 60 % of the function's
//! memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; the rest is the runtime, the pools and the
//! claimed payloads). So light kinds (notices, messages) run as wide as the slots allow while a
//! heavy one (X-ray analysis, 151 MiB) runs only as many at once as fit — four in a 1024 MB
//! worker — and one clinic's heavy uploads cannot get the worker killed for every clinic.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Under a backlog, how long a claim may wait for busy slots to free up so that it takes a
/// batch; idle, it never waits.
const BACKLOG_GATHER: Duration = Duration::from_millis(1);

/// The right to run one job, held by its task until the handler ends.
pub(super) type Slot = OwnedSemaphorePermit;

/// The worker's handler slots, how many of them one claim may fill, and its memory budget.
pub(super) struct Slots {
    free: Arc<Semaphore>,
    concurrency: usize,
    batch: usize,
    memory: Memory,
}

impl Slots {
    pub(super) fn new(concurrency: usize, batch: usize, memory_budget_mib: u32) -> Self {
        Self {
            free: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            batch,
            memory: Memory::new(memory_budget_mib),
        }
    }

    pub(super) fn memory(&self) -> Memory {
        self.memory.clone()
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

/// The worker's memory budget, in MiB, shared by the jobs it runs.
#[derive(Clone, Debug)]
pub(super) struct Memory {
    free: Arc<Semaphore>,
    budget_mib: u32,
}

impl Memory {
    pub(super) fn new(budget_mib: u32) -> Self {
        let budget_mib = budget_mib.max(1);
        Self {
            free: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
        }
    }

    /// Waits until `peak_mib` fits beside what already runs (first come, first served), and
    /// holds it until dropped. A kind larger than the whole budget runs alone rather than never.
    pub(super) async fn reserve(&self, peak_mib: u32) -> Option<OwnedSemaphorePermit> {
        self.free
            .clone()
            .acquire_many_owned(peak_mib.clamp(1, self.budget_mib))
            .await
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heavy_jobs_wait_for_memory_and_light_ones_pass_them_by() {
        let memory = Memory::new(600);
        let mut heavy = Vec::new();
        for _ in 0..3 {
            heavy.push(memory.reserve(151).await.expect("fits"));
        }
        // A fourth fits (604 > 600 does not): it waits until one of the three ends.
        let waiting = tokio::time::timeout(Duration::from_millis(50), memory.reserve(151)).await;
        assert!(waiting.is_err(), "the fourth heavy job must wait");
        // Light jobs still run beside the three: 600 − 453 leaves room for dozens.
        let light: Vec<_> = futures_util::future::join_all((0..50).map(|_| memory.reserve(2)))
            .await
            .into_iter()
            .map(|permit| permit.expect("fits"))
            .collect();
        drop(light);
        heavy.pop();
        assert!(memory.reserve(151).await.is_some(), "room again");
    }

    #[tokio::test]
    async fn a_kind_larger_than_the_budget_runs_alone() {
        let memory = Memory::new(100);
        let alone = memory.reserve(5_000).await.expect("runs");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), memory.reserve(1))
                .await
                .is_err()
        );
        drop(alone);
        assert!(memory.reserve(1).await.is_some());
    }
}
