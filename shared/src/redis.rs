//! The Redis connection: one multiplexed `ConnectionManager` per Lambda environment, with
//! short timeouts, connected lazily so Redis being down never stops a function from starting.

use crate::config::RedisConfig;
use crate::secrets::RedisCredentials;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// After a failed connection attempt, callers get an error at once for this long instead of
/// each paying the connect timeout again.
const RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

pub struct RedisConnector {
    client: Client,
    /// The shared connection, once made; dropped by [`RedisConnector::start_over`].
    manager: RwLock<Option<ConnectionManager>>,
    /// Held while a connection is being made, so a burst of callers makes one.
    connecting: tokio::sync::Mutex<()>,
    config: ConnectionManagerConfig,
    /// Where each new connection takes its credentials, when the URL came from a secret: a
    /// rotated AUTH token reaches the next connection (`crate::secrets::RedisCredentials`).
    credentials: Option<RedisCredentials>,
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

/// A Redis command that could not be run: no connection, or the command itself failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    #[error("redis is unreachable")]
    Unreachable(#[from] RedisUnavailable),
    #[error("redis command failed")]
    Failed(#[from] RedisError),
}

impl RedisConnector {
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        let client = Client::open(config.url.expose())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.timeout))
            .set_connection_timeout(Some(config.connect_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let credentials = config
            .url_source
            .clone()
            .and_then(|source| RedisCredentials::new(source, config.url.expose()));
        let manager_config = match &credentials {
            Some(credentials) => manager_config.set_credentials_provider(credentials.clone()),
            None => manager_config,
        };
        Ok(Self {
            client,
            manager: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            config: manager_config,
            credentials,
            connect_timeout: config.connect_timeout,
            last_failure: Mutex::new(None),
        })
    }

    /// A cheap clone of the shared connection, connecting on first use.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisUnavailable> {
        if let Some(manager) = self.current() {
            return Ok(manager);
        }
        if self.backing_off() {
            return Err(RedisUnavailable::BackingOff);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(manager) = self.current() {
            return Ok(manager);
        }
        let connect = ConnectionManager::new_with_config(self.client.clone(), self.config.clone());
        let result = match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(Ok(manager)) => Ok(manager),
            Ok(Err(error)) => Err(RedisUnavailable::Connect(error)),
            Err(_) => Err(RedisUnavailable::ConnectTimeout),
        };
        match result {
            Ok(manager) => {
                *self.manager.write().unwrap_or_else(|p| p.into_inner()) = Some(manager.clone());
                Ok(manager)
            }
            Err(error) => {
                self.note_failure();
                Err(error)
            }
        }
    }

    /// Drops the shared connection: the next caller makes a new one, with the credentials of
    /// now. The cache calls it when its breaker opens. The `redis` crate's manager reconnects
    /// by itself after an I/O error, but not after a refused AUTH (a token rotated between its
    /// credentials' read and its reconnect): without this it would answer that refusal for the
    /// rest of the environment's life.
    pub fn start_over(&self) {
        *self.manager.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn current(&self) -> Option<ConnectionManager> {
        self.manager
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A connection of its own, for blocking commands (`BLMOVE`): their reply may take as long
    /// as they block, which the shared manager's short response timeout would cut off, and a
    /// blocked command would hold up every other caller multiplexed behind it.
    pub async fn dedicated(
        &self,
        response_timeout: Duration,
    ) -> Result<::redis::aio::MultiplexedConnection, RedisUnavailable> {
        let config = ::redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(response_timeout));
        let config = match &self.credentials {
            Some(credentials) => config.set_credentials_provider(credentials.clone()),
            None => config,
        };
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(RedisUnavailable::Connect)
    }

    fn backing_off(&self) -> bool {
        let last = *self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        last.is_some_and(|at| at.elapsed() < RECONNECT_BACKOFF)
    }

    fn note_failure(&self) {
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }
}

/// What the admin cache view shows about the Redis server itself (from `INFO`).
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq, utoipa::ToSchema)]
pub struct ServerFacts {
    pub version: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub used_memory_bytes: Option<u64>,
    pub used_memory_peak_bytes: Option<u64>,
    /// 0 means no limit.
    pub maxmemory_bytes: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub connected_clients: Option<u64>,
    /// Keys of every database and every deployment sharing this Redis.
    pub keys: u64,
    pub keys_with_ttl: u64,
    pub evicted_keys: Option<u64>,
    pub expired_keys: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    /// Server-wide GET hit ratio since the server started (every client, not only Pulso).
    pub keyspace_hit_ratio: Option<f64>,
}

impl ServerFacts {
    /// Parses `INFO` output (`field:value` lines, `dbN:keys=…,expires=…` in the keyspace section).
    pub fn parse(info: &str) -> Self {
        let fields: std::collections::HashMap<&str, &str> = info
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.trim().split_once(':'))
            .collect();
        let number = |name: &str| fields.get(name).and_then(|value| value.parse::<u64>().ok());
        let text = |name: &str| fields.get(name).map(|value| value.to_string());
        let (mut keys, mut keys_with_ttl) = (0, 0);
        for (name, value) in &fields {
            if name.starts_with("db") && name[2..].chars().all(|c| c.is_ascii_digit()) {
                for pair in value.split(',') {
                    match pair.split_once('=') {
                        Some(("keys", count)) => keys += count.parse::<u64>().unwrap_or(0),
                        Some(("expires", count)) => {
                            keys_with_ttl += count.parse::<u64>().unwrap_or(0)
                        }
                        _ => {}
                    }
                }
            }
        }
        let hits = number("keyspace_hits");
        let misses = number("keyspace_misses");
        Self {
            version: text("redis_version"),
            uptime_seconds: number("uptime_in_seconds"),
            used_memory_bytes: number("used_memory"),
            used_memory_peak_bytes: number("used_memory_peak"),
            maxmemory_bytes: number("maxmemory"),
            maxmemory_policy: text("maxmemory_policy"),
            connected_clients: number("connected_clients"),
            keys,
            keys_with_ttl,
            evicted_keys: number("evicted_keys"),
            expired_keys: number("expired_keys"),
            keyspace_hits: hits,
            keyspace_misses: misses,
            keyspace_hit_ratio: match (hits, misses) {
                (Some(hits), Some(misses)) if hits + misses > 0 => {
                    Some(hits as f64 / (hits + misses) as f64)
                }
                _ => None,
            },
        }
    }
}

impl RedisConnector {
    /// The server's `INFO`, parsed. ElastiCache serves `INFO` too (some fields may be absent).
    pub async fn server_facts(&self) -> Result<ServerFacts, RedisFailure> {
        let mut connection = self.connection().await?;
        let info: String = ::redis::cmd("INFO").query_async(&mut connection).await?;
        Ok(ServerFacts::parse(&info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_parsed_into_facts() {
        let info = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:42\r\n\
                    # Clients\r\nconnected_clients:3\r\n# Memory\r\nused_memory:1048576\r\n\
                    used_memory_peak:2097152\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n\
                    # Stats\r\nexpired_keys:5\r\nevicted_keys:0\r\nkeyspace_hits:90\r\n\
                    keyspace_misses:10\r\n# Keyspace\r\ndb0:keys=7,expires=4,avg_ttl=1000\r\n\
                    db1:keys=3,expires=0,avg_ttl=0\r\n";
        let facts = ServerFacts::parse(info);
        assert_eq!(facts.version.as_deref(), Some("7.0.15"));
        assert_eq!(facts.keys, 10);
        assert_eq!(facts.keys_with_ttl, 4);
        assert_eq!(facts.connected_clients, Some(3));
        assert_eq!(facts.used_memory_bytes, Some(1_048_576));
        assert_eq!(facts.maxmemory_policy.as_deref(), Some("noeviction"));
        assert_eq!(facts.keyspace_hit_ratio, Some(0.9));
    }
}
