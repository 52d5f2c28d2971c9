//! The feeder's wait for work when no job is ready (the blocking `BLMOVE` the module header
//! describes), on a connection of its own that is opened on first use.

use crate::redis::RedisConnector;
use crate::telemetry::ErrorChain;
use std::time::Duration;

/// The blocking connection's response timeout: longer than any block.
const BLOCK_RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
pub(super) struct WorkSignal {
    /// The blocking connection, opened on first wait and reopened after a failure.
    blocking: Option<::redis::aio::MultiplexedConnection>,
}

impl WorkSignal {
    /// Blocks until `fresh` (where a clinic goes when a job becomes ready while nothing is) has
    /// an element or `wait` passes, without taking anything: a `BLMOVE` of the list's tail onto
    /// itself.
    pub(super) async fn wait(&mut self, redis: &RedisConnector, fresh: &str, wait: Duration) {
        if wait < Duration::from_millis(10) {
            tokio::time::sleep(wait).await;
            return;
        }
        if self.blocking.is_none() {
            match redis.dedicated(BLOCK_RESPONSE_TIMEOUT).await {
                Ok(connection) => self.blocking = Some(connection),
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "no blocking Redis connection");
                    tokio::time::sleep(wait).await;
                    return;
                }
            }
        }
        let Some(connection) = self.blocking.as_mut() else {
            return;
        };
        let waited: Result<Option<String>, _> = ::redis::cmd("BLMOVE")
            .arg(fresh)
            .arg(fresh)
            .arg("RIGHT")
            .arg("RIGHT")
            .arg(format!("{:.3}", wait.as_secs_f64()))
            .query_async(connection)
            .await;
        if let Err(error) = waited {
            tracing::warn!(error = %error, "blocking wait for jobs failed; reconnecting");
            self.blocking = None;
            tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
        }
    }
}
