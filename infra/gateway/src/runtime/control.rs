//! What the gateway does to the instances besides invoking them: replace them after a rebuild,
//! stop the ones idle too long or wedged, inject the dev-only faults, report their state, and
//! stop them all at shutdown.

use std::sync::Arc;

use serde_json::{Value, json};

use super::pool::{State, StopReason};
use super::{Fault, FaultError, FunctionSpec, Host, REAP_EVERY, lock, stop};

impl Host {
    /// After a rebuild: idle instances of `functions` are stopped now, busy ones when their
    /// invocation ends; the next invocations start the new binary.
    pub fn recycle(self: &Arc<Self>, functions: &[String]) {
        for name in functions {
            let Some(f) = self.functions.get(name) else {
                continue;
            };
            let mut pool = lock(&f.pool);
            let numbers: Vec<u64> = pool.instances.keys().copied().collect();
            for number in numbers {
                let busy = pool
                    .instances
                    .get(&number)
                    .is_some_and(|i| matches!(i.state, State::Busy { .. }));
                if busy {
                    if let Some(instance) = pool.instances.get_mut(&number) {
                        instance.retiring = true;
                    }
                } else {
                    stop(&mut pool, number, StopReason::Rebuilt);
                }
            }
            self.schedule(f, &mut pool);
        }
    }

    /// Stops extra instances that have been idle for `idle_reap`, every `REAP_EVERY`.
    pub async fn reap_idle_forever(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(REAP_EVERY);
        loop {
            ticks.tick().await;
            for f in self.functions.values() {
                let mut pool = lock(&f.pool);
                let newest = pool.instances.values().map(|i| i.last_used).max();
                let idle: Vec<u64> = pool
                    .instances
                    .iter()
                    .filter(|(_, i)| matches!(i.state, State::Idle { .. }))
                    .filter(|(_, i)| i.last_used.elapsed() >= self.options.idle_reap)
                    .filter(|(_, i)| Some(i.last_used) != newest)
                    .map(|(number, _)| *number)
                    .collect();
                for number in idle {
                    stop(&mut pool, number, StopReason::IdleTooLong);
                }
                // Answered and never asked for more: wedged outside any invocation.
                let wedged: Vec<u64> = pool
                    .instances
                    .iter()
                    .filter(|(_, i)| matches!(i.state, State::Between { since } if since.elapsed() >= REAP_EVERY))
                    .map(|(number, _)| *number)
                    .collect();
                for number in wedged {
                    tracing::warn!(function = %f.spec.name, instance = number, "instance answered but never asked for its next event: stopped");
                    stop(&mut pool, number, StopReason::Wedged);
                }
            }
        }
    }

    pub fn fault(self: &Arc<Self>, function: &str, fault: Fault) -> Result<Vec<u64>, FaultError> {
        let f = self
            .functions
            .get(function)
            .ok_or_else(|| FaultError::UnknownFunction(function.to_owned()))?;
        let mut pool = lock(&f.pool);
        let numbers: Vec<u64> = pool
            .instances
            .iter()
            .filter(|(_, i)| !i.retiring)
            .map(|(number, _)| *number)
            .collect();
        if numbers.is_empty() {
            return Err(FaultError::NoInstance(function.to_owned()));
        }
        for number in &numbers {
            match fault {
                Fault::Hang => {
                    if let Some(instance) = pool.instances.get_mut(number) {
                        instance.frozen = instance.process.freeze();
                    }
                }
                Fault::Crash => {
                    pool.counters.crashes += 1;
                    stop(&mut pool, *number, StopReason::Fault);
                }
            }
        }
        tracing::warn!(function, ?fault, instances = ?numbers, "fault injected on purpose (POST /_local/functions/{function}/fault)");
        self.schedule(f, &mut pool);
        Ok(numbers)
    }

    /// Every function's settings, instances and counters, for `/_local/functions`.
    pub fn status(&self) -> Vec<(&FunctionSpec, Value)> {
        self.functions
            .values()
            .map(|f| {
                let mut status = lock(&f.pool).status();
                status["max_instances"] = json!(f.max_instances);
                (&f.spec, status)
            })
            .collect()
    }

    /// Stops every instance (the gateway is shutting down).
    pub fn shutdown(&self) {
        for f in self.functions.values() {
            let mut pool = lock(&f.pool);
            pool.fail_queue("Runtime.Shutdown", "the local gateway is shutting down");
            let numbers: Vec<u64> = pool.instances.keys().copied().collect();
            for number in numbers {
                stop(&mut pool, number, StopReason::Shutdown);
            }
        }
    }
}
