//! The ids of the jobs this worker holds (running, or finished and not yet recorded): what the
//! renewer extends, and what is abandoned if the drain stops with any left.

use crate::ids::JobId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub(super) struct Held(Arc<Mutex<HashSet<JobId>>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<JobId>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn insert(&self, ids: impl Iterator<Item = JobId>) {
        self.lock().extend(ids);
    }

    pub(super) fn remove(&self, ids: impl Iterator<Item = JobId>) {
        let mut held = self.lock();
        for id in ids {
            held.remove(&id);
        }
    }

    pub(super) fn snapshot(&self) -> Vec<JobId> {
        self.lock().iter().copied().collect()
    }

    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}
