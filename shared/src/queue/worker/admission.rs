//! Admission: how much work this worker may run right now, by count and by memory.
//!
//! Every job takes one of `WORKER_CONCURRENCY` slots, and the feeder claims at most as many
//! jobs as it was admitted slots. Each job also holds its kind's peak memory
//! (`JobKind::with_peak_memory_mib`) from the worker's budget: 60 % of the function's memory
//! (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; the rest is the runtime, the pools and the claimed
//! payloads). The claim itself takes only jobs that fit in what is free ([`Memory::room`],
//! `claim.lua`), so a claimed job reserves its memory at once and starts: light kinds (notices,
//! messages) run as wide as the slots allow, a heavy one (X-ray analysis, 151 MiB) only as many
//! at once as fit — four in a 1024 MB worker — and one clinic's heavy uploads can neither get
//! the worker killed for every clinic nor sit in it holding slots while they wait for room.
//!
//! One clinic may hold at most its share of the slots ([`share_of`]: all but an eighth), so
//! however long its backlog, a slot is free for another clinic's job the moment it comes.

use crate::ids::ClinicId;
use crate::queue::ClaimRoom;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Under a backlog, how long a claim may wait for busy slots to free up so that it takes a
/// batch; idle, it never waits. Short, because another clinic's job that arrives meanwhile
/// waits it out (1 ms gave no more throughput than this: `tests/benches/README.md`, queue).
const BACKLOG_GATHER: Duration = Duration::from_micros(250);

/// The right to run one job, held by its task until the handler ends.
pub(super) type Slot = OwnedSemaphorePermit;

/// How many of a worker's `concurrency` slots one clinic may hold: all but an eighth (at least
/// one), kept for the other clinics. A worker of one slot lends it to anyone.
pub(super) fn share_of(concurrency: usize) -> usize {
    if concurrency <= 1 {
        concurrency.max(1)
    } else {
        concurrency - (concurrency / 8).max(1)
    }
}

/// The worker's handler slots, how many of them one claim may fill, its memory budget and
/// each clinic's share.
pub(super) struct Slots {
    free: Arc<Semaphore>,
    concurrency: usize,
    batch: usize,
    memory: Memory,
    shares: Shares,
}

impl Slots {
    pub(super) fn new(concurrency: usize, batch: usize, memory_budget_mib: u32) -> Self {
        Self {
            free: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            batch,
            memory: Memory::new(memory_budget_mib),
            shares: Shares {
                running: Arc::default(),
                share: share_of(concurrency),
            },
        }
    }

    pub(super) fn memory(&self) -> Memory {
        self.memory.clone()
    }

    /// What the next claim may fill: the memory free, and each clinic's share of the slots.
    pub(super) fn room(&self) -> ClaimRoom {
        let memory = self.memory.room();
        ClaimRoom {
            free_mib: memory.0,
            budget_mib: memory.1,
            clinic_share: u32::try_from(self.shares.share).unwrap_or(u32::MAX),
            running: self.shares.running(),
        }
    }

    /// The place of a claimed job: its slot, its clinic's share and the memory the claim
    /// counted it for (reserved at once: see [`Memory::reserve`]).
    pub(super) async fn place(&self, slot: Slot, clinic: ClinicId, memory_mib: u32) -> Place {
        Place {
            _share: self.shares.hold(clinic),
            _slot: slot,
            _memory: self.memory.reserve(memory_mib).await,
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

/// The worker's memory budget, in MiB, shared by the jobs it runs.
#[derive(Clone, Debug)]
pub(super) struct Memory {
    free: Arc<Semaphore>,
    budget_mib: u32,
    /// Woken each time a job gives its memory back.
    released: Arc<Notify>,
}

impl Memory {
    pub(super) fn new(budget_mib: u32) -> Self {
        let budget_mib = budget_mib.max(1);
        Self {
            free: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
            released: Arc::new(Notify::new()),
        }
    }

    /// The memory free now and the whole budget, MiB.
    pub(super) fn room(&self) -> (u32, u32) {
        (
            u32::try_from(self.free.available_permits()).unwrap_or(u32::MAX),
            self.budget_mib,
        )
    }

    /// Holds `mib` (at most the whole budget: a heavier kind runs alone rather than never) until
    /// the reservation is dropped. Immediate for a job the claim counted against [`Memory::room`]
    /// (only jobs ending change it meanwhile, and they free memory); otherwise it waits, first
    /// come, first served.
    pub(super) async fn reserve(&self, mib: u32) -> Reservation {
        let permit = self
            .free
            .clone()
            .acquire_many_owned(mib.clamp(1, self.budget_mib))
            .await
            .ok();
        Reservation {
            permit,
            released: self.released.clone(),
        }
    }

    /// Until a job gives memory back (at once if one did since the last call).
    pub(super) async fn released(&self) {
        self.released.notified().await;
    }
}

/// Everything a running job holds, given back together when its task drops it: its clinic's
/// share, its slot, then its memory (whose release wakes the feeder, which must then see the
/// rest free: fields drop in this order).
pub(super) struct Place {
    _share: ShareHeld,
    _slot: Slot,
    _memory: Reservation,
}

/// How many jobs each clinic runs here, and how many one clinic may.
#[derive(Clone)]
struct Shares {
    running: Arc<Mutex<HashMap<ClinicId, u32>>>,
    share: usize,
}

impl Shares {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClinicId, u32>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn running(&self) -> Vec<(ClinicId, u32)> {
        self.lock()
            .iter()
            .map(|(clinic, n)| (*clinic, *n))
            .collect()
    }

    fn hold(&self, clinic: ClinicId) -> ShareHeld {
        *self.lock().entry(clinic).or_default() += 1;
        ShareHeld {
            shares: self.clone(),
            clinic,
        }
    }
}

/// One job's part of its clinic's share.
struct ShareHeld {
    shares: Shares,
    clinic: ClinicId,
}

impl Drop for ShareHeld {
    fn drop(&mut self) {
        let mut running = self.shares.lock();
        if let Some(count) = running.get_mut(&self.clinic) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.clinic);
            }
        }
    }
}

/// One job's memory, given back (and the feeder told) when dropped.
pub(super) struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    released: Arc<Notify>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // The memory first, then the news: a woken feeder must see the room.
        drop(self.permit.take());
        self.released.notify_one();
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
            heavy.push(memory.reserve(151).await);
        }
        assert_eq!(memory.room(), (600 - 3 * 151, 600));
        // A fourth does not fit (604 > 600): it waits until one of the three ends.
        let waiting = tokio::time::timeout(Duration::from_millis(50), memory.reserve(151)).await;
        assert!(waiting.is_err(), "the fourth heavy job must wait");
        // Light jobs still run beside the three: 600 − 453 leaves room for dozens.
        let light = futures_util::future::join_all((0..50).map(|_| memory.reserve(2))).await;
        drop(light);
        heavy.pop();
        let again = tokio::time::timeout(Duration::from_millis(50), memory.reserve(151)).await;
        assert!(again.is_ok(), "room again");
    }

    #[tokio::test]
    async fn a_kind_larger_than_the_budget_runs_alone() {
        let memory = Memory::new(100);
        let alone = memory.reserve(5_000).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), memory.reserve(1))
                .await
                .is_err()
        );
        drop(alone);
        assert_eq!(memory.room(), (100, 100));
        tokio::time::timeout(Duration::from_millis(50), memory.released())
            .await
            .expect("the end of a job is announced");
    }
}

#[cfg(test)]
mod share_tests {
    use super::*;

    #[test]
    fn a_clinic_may_hold_all_but_an_eighth_of_the_slots() {
        for (concurrency, share) in [
            (1, 1),
            (2, 1),
            (4, 3),
            (8, 7),
            (16, 14),
            (64, 56),
            (256, 224),
        ] {
            assert_eq!(share_of(concurrency), share, "concurrency {concurrency}");
        }
    }

    #[tokio::test]
    async fn a_place_counts_for_its_clinic_until_its_job_ends() {
        let slots = Slots::new(8, 8, 100);
        let clinic = ClinicId(uuid::Uuid::nil());
        let first = slots.first().await.expect("slot");
        let place = slots.place(first, clinic, 30).await;
        let room = slots.room();
        assert_eq!((room.free_mib, room.clinic_share), (70, 7));
        assert_eq!(room.running, vec![(clinic, 1)]);
        drop(place);
        let room = slots.room();
        assert_eq!((room.free_mib, room.running.len()), (100, 0));
        assert!(slots.all_free());
    }
}
