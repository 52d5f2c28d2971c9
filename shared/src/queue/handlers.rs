//! Which code runs a job of which kind. The queue is infrastructure and imports no context, nor
//! the state that holds it: the caller that composes a worker (`shared::worker`, a test, the
//! benchmark) registers the kinds, with handlers that take its state `S` (`AppState` in Pulso).

use super::types::{Job, JobFailure, JobKind};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a handler returns: `Ok` with the JSON stored in `jobs.result`, or why it failed.
pub type HandlerResult = Result<serde_json::Value, JobFailure>;

pub(super) type BoxedHandler<S> =
    Arc<dyn Fn(S, Job) -> Pin<Box<dyn Future<Output = HandlerResult> + Send>> + Send + Sync>;

/// The handlers of one worker, by job kind; each gets the worker's state `S` and the job.
pub struct Handlers<S> {
    /// Each kind's handler and its peak memory (MiB).
    by_kind: HashMap<&'static str, BoxedHandler<S>>,
}

impl<S> Default for Handlers<S> {
    fn default() -> Self {
        Self {
            by_kind: HashMap::new(),
        }
    }
}

impl<S> Clone for Handlers<S> {
    fn clone(&self) -> Self {
        Self {
            by_kind: self.by_kind.clone(),
        }
    }
}

impl<S> Handlers<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `handler` for jobs of `kind`: `async fn(state: S, job: Job) -> HandlerResult`.
    /// Registering a kind twice keeps the last handler.
    pub fn on<F, Fut>(mut self, kind: JobKind, handler: F) -> Self
    where
        F: Fn(S, Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let boxed: BoxedHandler<S> = Arc::new(move |state, job| Box::pin(handler(state, job)));
        self.by_kind.insert(kind.as_str(), boxed);
        self
    }

    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_kind.keys().copied()
    }

    /// The handler of `kind`.
    pub(super) fn get(&self, kind: &str) -> Option<BoxedHandler<S>> {
        self.by_kind.get(kind).cloned()
    }
}

impl<S> std::fmt::Debug for Handlers<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<_> = self.kinds().collect();
        kinds.sort_unstable();
        f.debug_struct("Handlers").field("kinds", &kinds).finish()
    }
}
