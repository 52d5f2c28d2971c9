//! The Redis connection: one multiplexed `ConnectionManager` per Lambda environment, with
//! short timeouts, connected lazily so Redis being down never stops a function from starting.

use crate::config::RedisConfig;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// After a failed connection attempt, callers get an error at once for this long instead of
/// each paying the connect timeout again.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

pub struct RedisConnector {
    client: Client,
    manager: OnceCell<ConnectionManager>,
    config: ConnectionManagerConfig,
    connect_timeout: Duration,
    last_failure: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    #[error("redis connection failed")]
    Connect(#[source] RedisError),
    #[error("redis connection timed out")]
    ConnectTimeout,
    #[error("redis skipped after a recent connection failure")]
    BackingOff,
}

impl RedisConnector {
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let client = Client::open(config.url.expose())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.timeout))
            .set_connection_timeout(Some(config.connect_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Ok(Self {
            client,
            manager: OnceCell::new(),
            config: manager_config,
            connect_timeout: config.connect_timeout,
            last_failure: Mutex::new(None),
        })
    }

    /// A cheap clone of the shared connection, connecting on first use.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisUnavailable> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        if self.backing_off() {
            return Err(RedisUnavailable::BackingOff);
        }
        let result = self
            .manager
            .get_or_try_init(|| async {
                let connect =
                    ConnectionManager::new_with_config(self.client.clone(), self.config.clone());
                match tokio::time::timeout(self.connect_timeout, connect).await {
                    Ok(Ok(manager)) => Ok(manager),
                    Ok(Err(error)) => Err(RedisUnavailable::Connect(error)),
                    Err(_) => Err(RedisUnavailable::ConnectTimeout),
                }
            })
            .await;
        match result {
            Ok(manager) => Ok(manager.clone()),
            Err(error) => {
                self.note_failure();
                Err(error)
            }
        }
    }

    fn backing_off(&self) -> bool {
        let last = *self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF)
    }

    fn note_failure(&self) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
}
