//! The registry of live WebSocket connections in Redis: who is connected where, so a
//! notification finds every connection of its audience in one or two round trips.
//!
//! Keys ([`crate::keys::Keys::ws_connection`]), all under the clinic's hash tag but the locator:
//! - `{p}:ws:{<clinic>}:conn:<id>:v1` HASH clinic, user, role, connected_at, since; it expires
//!   when API Gateway ends the connection (connected_at + 2 h);
//! - `{p}:ws:{<clinic>}:clinic:v1`, `…:role:<role>:v1`, `…:user:<user>:v1` SETs of connection
//!   ids; their TTL (2 h) restarts at every registration and every client message, so a set
//!   always outlives the hashes of its members;
//! - `{p}:ws:{<id>}:locator:v1` STRING: the clinic of a connection id (`$disconnect` and
//!   messages carry only the id);
//! - `{p}:ws:{<clinic>}:ending:v1` ZSET connection id -> when its registration ends: the
//!   scheduler closes what is due (`crate::realtime::close_ended`);
//! - `{p}:ws:{global}:clinics:v1` ZSET clinic -> when its newest connection ends: the clinics an
//!   announcement to everyone visits (bounded by the clinics with someone connected), kept ten
//!   minutes past that end so their ended connections are still closed.
//!
//! Registering and removing are one Lua script each on the clinic's slot (`register.lua`,
//! `unregister.lua`), so a connection is never in some indexes and not others. A connection that
//! vanished without `$disconnect` stays in its sets until the first push to it gets 410 Gone
//! (then it is removed from every index) or until the sets expire.

use super::Realtime;
use super::types::{Audience, CONNECTION_LIFETIME};
use crate::auth::Role;
use crate::ids::{ClinicId, UserId};
use crate::keys::Keys;
use crate::redis::{RedisConnector, RedisUnavailable};
use ::redis::{AsyncCommands, RedisError, Script};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

static REGISTER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("register.lua")));
static UNREGISTER: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("unregister.lua")));

/// A connection's registration is never shorter than this, even when its `connectedAt` is
/// implausibly old: long enough for the first push to meet it (and, if it is dead, remove it).
const MINIMUM_LIFETIME_MS: i64 = 60_000;

/// Whether a connection taken out of the registry is closed (`$disconnect`, 410 Gone, closed by
/// `DeleteConnection`), or only its registration ended and its socket may still be open: then it
/// stays in its clinic's registration ends, for the closer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closed {
    Yes,
    NotYet,
}

/// How long after a clinic's newest connection ended the clinic stays in the live-clinic index:
/// the scheduler, which runs every minute, has this long to close its ended connections.
const CLOSING_WINDOW_MS: i64 = 10 * 60_000;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the connection registry's Redis is unreachable")]
    Unavailable(#[from] RedisUnavailable),
    #[error("the connection registry's Redis failed")]
    Command(#[from] RedisError),
}

/// One live connection, as registered at `$connect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveConnection {
    pub id: String,
    pub clinic: ClinicId,
    pub user: UserId,
    pub role: Role,
    /// When API Gateway opened it (Unix ms): it ends two hours later.
    pub connected_at_ms: i64,
    /// The `?since=` the client connected with: the default of its `replay`.
    pub since: Option<i64>,
    /// When the token it connected with expires (Unix ms); `None` for registrations written
    /// before this was kept.
    pub token_expires_at_ms: Option<i64>,
}

impl LiveConnection {
    /// When its registration ends (Unix ms): when API Gateway closes it at the latest, or when
    /// its token expires if that is sooner. After that it is refused `ack` and `replay`, and
    /// pushes skip it.
    pub fn ends_at_ms(&self) -> i64 {
        let lifetime = CONNECTION_LIFETIME.as_millis() as i64;
        let closed = (self.connected_at_ms + lifetime).max(now_ms() + MINIMUM_LIFETIME_MS);
        self.token_expires_at_ms
            .map_or(closed, |expires| closed.min(expires))
    }

    /// Whether its token has expired by `now_ms`.
    pub fn token_expired(&self, now_ms: i64) -> bool {
        self.token_expires_at_ms
            .is_some_and(|expires| expires <= now_ms)
    }
}

/// A connection a push goes to, and the set it was found in (removed from on 410 even when
/// its hash has expired).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub clinic: ClinicId,
    pub connection_id: String,
    pub found_in: String,
}

#[derive(Clone, Copy)]
pub struct ConnectionRegistry<'a> {
    redis: &'a RedisConnector,
    keys: &'a Keys,
    max_per_user: u32,
}

/// What [`ConnectionRegistry::register`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// The user already holds this many live connections; nothing was written.
    UserAtLimit {
        limit: u32,
    },
}

impl<'a> ConnectionRegistry<'a> {
    pub fn new(realtime: impl Into<Realtime<'a>>) -> Self {
        let realtime = realtime.into();
        Self {
            redis: realtime.redis,
            keys: realtime.keys,
            max_per_user: realtime.config.max_connections_per_user,
        }
    }

    /// Puts `connection` in its clinic's, role's and user's sets, with its hash and locator,
    /// unless its user already holds the most live connections allowed. The user's set is rid
    /// of ended registrations first, so only live ones count.
    pub async fn register(
        &self,
        connection: &LiveConnection,
    ) -> Result<Registration, RegistryError> {
        self.prune_user(connection.clinic, connection.user).await?;
        let mut redis = self.redis.connection().await?;
        let keys = self.keys.ws_connection(
            connection.clinic,
            connection.role,
            connection.user,
            &connection.id,
        );
        let ends_at = connection.ends_at_ms();
        let registered: i64 = REGISTER
            .key(&keys.connection)
            .key(&keys.clinic)
            .key(&keys.role)
            .key(&keys.user)
            .key(&keys.ending)
            .arg(&connection.id)
            .arg(connection.clinic.to_string())
            .arg(connection.user.to_string())
            .arg(connection.role.as_str())
            .arg(connection.connected_at_ms)
            .arg(
                connection
                    .since
                    .map(|since| since.to_string())
                    .unwrap_or_default(),
            )
            .arg(ends_at)
            .arg(CONNECTION_LIFETIME.as_millis() as u64)
            .arg(
                connection
                    .token_expires_at_ms
                    .map(|expires| expires.to_string())
                    .unwrap_or_default(),
            )
            .arg(self.max_per_user)
            .invoke_async(&mut redis)
            .await?;
        if registered == 0 {
            return Ok(Registration::UserAtLimit {
                limit: self.max_per_user,
            });
        }
        // Other slots: the locator (by connection id) and the live-clinic index. Each write is
        // idempotent; a failure here leaves a connection that pushes still reach.
        let live = self.keys.ws_live_clinics();
        let () = ::redis::pipe()
            .cmd("SET")
            .arg(&keys.locator)
            .arg(connection.clinic.to_string())
            .arg("PXAT")
            .arg(ends_at)
            .ignore()
            .cmd("ZADD")
            .arg(&live)
            .arg("GT")
            .arg(ends_at)
            .arg(connection.clinic.to_string())
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&live)
            .arg("-inf")
            .arg(format!("({}", now_ms() - CLOSING_WINDOW_MS))
            .ignore()
            .query_async(&mut redis)
            .await?;
        Ok(Registration::Registered)
    }

    /// Drops the members of the user's set whose registration has ended.
    async fn prune_user(&self, clinic: ClinicId, user: UserId) -> Result<(), RegistryError> {
        let set = self.keys.ws_user_connections(clinic, user);
        let members: Vec<String> = self.redis.connection().await?.smembers(&set).await?;
        let targets = members
            .into_iter()
            .map(|connection_id| Target {
                clinic,
                connection_id,
                found_in: set.clone(),
            })
            .collect();
        self.still_registered(targets).await.map(drop)
    }

    /// The registered connection with this id, if it is still registered.
    pub async fn lookup(
        &self,
        connection_id: &str,
    ) -> Result<Option<LiveConnection>, RegistryError> {
        let mut redis = self.redis.connection().await?;
        let Some(clinic) = self.locate(&mut redis, connection_id).await? else {
            return Ok(None);
        };
        let fields: HashMap<String, String> = redis
            .hgetall(self.keys.ws_connection_hash(clinic, connection_id))
            .await?;
        Ok(parse_connection(connection_id, clinic, &fields))
    }

    /// Restarts the TTL of the connection's sets: it is in use.
    pub async fn touch(&self, connection: &LiveConnection) -> Result<(), RegistryError> {
        let mut redis = self.redis.connection().await?;
        let keys = self.keys.ws_connection(
            connection.clinic,
            connection.role,
            connection.user,
            &connection.id,
        );
        let ttl = CONNECTION_LIFETIME.as_millis() as u64;
        let mut pipe = ::redis::pipe();
        for set in [&keys.clinic, &keys.role, &keys.user, &keys.ending] {
            pipe.cmd("PEXPIRE").arg(set).arg(ttl).ignore();
        }
        let () = pipe.query_async(&mut redis).await?;
        Ok(())
    }

    /// `$disconnect`: removes the connection from every index. `false` when it was not
    /// registered (any more).
    pub async fn unregister(&self, connection_id: &str) -> Result<bool, RegistryError> {
        let mut redis = self.redis.connection().await?;
        let Some(clinic) = self.locate(&mut redis, connection_id).await? else {
            return Ok(false);
        };
        self.remove_from(&mut redis, clinic, connection_id, None, Closed::Yes)
            .await
    }

    /// A push got 410 Gone: removes the connection from every index, including `found_in`.
    pub async fn remove(
        &self,
        clinic: ClinicId,
        connection_id: &str,
        found_in: Option<&str>,
    ) -> Result<bool, RegistryError> {
        let mut redis = self.redis.connection().await?;
        self.remove_from(&mut redis, clinic, connection_id, found_in, Closed::Yes)
            .await
    }

    /// The connections a notification for `audience` goes to.
    pub async fn audience(&self, audience: Audience) -> Result<Vec<Target>, RegistryError> {
        let mut redis = self.redis.connection().await?;
        let sets: Vec<(ClinicId, String)> = match audience {
            Audience::User { clinic, user } => {
                vec![(clinic, self.keys.ws_user_connections(clinic, user))]
            }
            Audience::Role { clinic, role } => {
                vec![(clinic, self.keys.ws_role_connections(clinic, role))]
            }
            Audience::Clinic(clinic) => vec![(clinic, self.keys.ws_clinic_connections(clinic))],
            Audience::Everyone => self
                .live_clinics(&mut redis)
                .await?
                .into_iter()
                .map(|clinic| (clinic, self.keys.ws_clinic_connections(clinic)))
                .collect(),
        };
        if sets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for (_, set) in &sets {
            pipe.cmd("SMEMBERS").arg(set);
        }
        let members: Vec<Vec<String>> = pipe.query_async(&mut redis).await?;
        Ok(sets
            .into_iter()
            .zip(members)
            .flat_map(|((clinic, set), ids)| {
                ids.into_iter().map(move |connection_id| Target {
                    clinic,
                    connection_id,
                    found_in: set.clone(),
                })
            })
            .collect())
    }

    /// The `targets` whose registration has not ended; the others (their token expired, or API
    /// Gateway's two hours are up) are removed from every index instead of being pushed to.
    pub async fn still_registered(
        &self,
        targets: Vec<Target>,
    ) -> Result<Vec<Target>, RegistryError> {
        if targets.is_empty() {
            return Ok(targets);
        }
        let mut redis = self.redis.connection().await?;
        let mut pipe = ::redis::pipe();
        for target in &targets {
            pipe.cmd("EXISTS").arg(
                self.keys
                    .ws_connection_hash(target.clinic, &target.connection_id),
            );
        }
        let exists: Vec<bool> = pipe.query_async(&mut redis).await?;
        let mut live = Vec::with_capacity(targets.len());
        for (target, exists) in targets.into_iter().zip(exists) {
            if exists {
                live.push(target);
            } else {
                // Its socket may still be open: the closer finds it by its registration's end.
                self.remove_from(
                    &mut redis,
                    target.clinic,
                    &target.connection_id,
                    Some(&target.found_in),
                    Closed::NotYet,
                )
                .await?;
            }
        }
        Ok(live)
    }

    /// Clinics with a connection that has not ended yet; entries that ended more than the
    /// closing window ago are dropped on the way.
    async fn live_clinics(
        &self,
        redis: &mut ::redis::aio::ConnectionManager,
    ) -> Result<Vec<ClinicId>, RegistryError> {
        self.clinics_since(redis, now_ms()).await
    }

    /// Clinics whose newest connection ends at `since` or later.
    async fn clinics_since(
        &self,
        redis: &mut ::redis::aio::ConnectionManager,
        since: i64,
    ) -> Result<Vec<ClinicId>, RegistryError> {
        let live = self.keys.ws_live_clinics();
        let (clinics,): (Vec<String>,) = ::redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&live)
            .arg("-inf")
            .arg(format!("({}", now_ms() - CLOSING_WINDOW_MS))
            .ignore()
            .cmd("ZRANGE")
            .arg(&live)
            .arg(since)
            .arg("+inf")
            .arg("BYSCORE")
            .query_async(redis)
            .await?;
        Ok(clinics
            .iter()
            .filter_map(|clinic| clinic.parse().ok())
            .collect())
    }

    /// The connections whose registration has ended (their token expired, or API Gateway's two
    /// hours are up) and that nothing has removed yet: the ones to close. Read from each
    /// clinic's ZSET of registration ends, in the clinics whose newest connection ended within
    /// the closing window or has not ended.
    pub async fn ended(&self) -> Result<Vec<Target>, RegistryError> {
        let mut redis = self.redis.connection().await?;
        let now = now_ms();
        let clinics = self
            .clinics_since(&mut redis, now - CLOSING_WINDOW_MS)
            .await?;
        if clinics.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for clinic in &clinics {
            pipe.cmd("ZRANGE")
                .arg(self.keys.ws_ending(*clinic))
                .arg("-inf")
                .arg(now)
                .arg("BYSCORE");
        }
        let ended: Vec<Vec<String>> = pipe.query_async(&mut redis).await?;
        Ok(clinics
            .into_iter()
            .zip(ended)
            .flat_map(|(clinic, ids)| {
                let found_in = self.keys.ws_clinic_connections(clinic);
                ids.into_iter().map(move |connection_id| Target {
                    clinic,
                    connection_id,
                    found_in: found_in.clone(),
                })
            })
            .collect())
    }

    async fn locate(
        &self,
        redis: &mut ::redis::aio::ConnectionManager,
        connection_id: &str,
    ) -> Result<Option<ClinicId>, RegistryError> {
        let clinic: Option<String> = redis.get(self.keys.ws_locator(connection_id)).await?;
        Ok(clinic.and_then(|clinic| clinic.parse().ok()))
    }

    async fn remove_from(
        &self,
        redis: &mut ::redis::aio::ConnectionManager,
        clinic: ClinicId,
        connection_id: &str,
        found_in: Option<&str>,
        closed: Closed,
    ) -> Result<bool, RegistryError> {
        let hash = self.keys.ws_connection_hash(clinic, connection_id);
        let (user, role): (Option<String>, Option<String>) = ::redis::cmd("HMGET")
            .arg(&hash)
            .arg("user")
            .arg("role")
            .query_async(redis)
            .await?;
        let mut sets = vec![self.keys.ws_clinic_connections(clinic)];
        if let Some(user) = user.and_then(|user| user.parse::<UserId>().ok()) {
            sets.push(self.keys.ws_user_connections(clinic, user));
        }
        if let Some(role) = role.as_deref().and_then(parse_role) {
            sets.push(self.keys.ws_role_connections(clinic, role));
        }
        if let Some(found_in) = found_in
            && !sets.iter().any(|set| set == found_in)
        {
            sets.push(found_in.to_owned());
        }
        let mut script = UNREGISTER.key(&hash);
        script.key(self.keys.ws_ending(clinic));
        for set in &sets {
            script.key(set);
        }
        let removed: i64 = script
            .arg(connection_id)
            .arg(if closed == Closed::Yes { "1" } else { "0" })
            .invoke_async(redis)
            .await?;
        let _: i64 = redis.del(self.keys.ws_locator(connection_id)).await?;
        Ok(removed == 1)
    }
}

fn parse_connection(
    id: &str,
    clinic: ClinicId,
    fields: &HashMap<String, String>,
) -> Option<LiveConnection> {
    Some(LiveConnection {
        id: id.to_owned(),
        clinic,
        user: fields.get("user")?.parse().ok()?,
        role: parse_role(fields.get("role")?)?,
        connected_at_ms: fields.get("connected_at")?.parse().ok()?,
        since: fields.get("since").and_then(|since| since.parse().ok()),
        token_expires_at_ms: fields
            .get("token_expires_at")
            .and_then(|expires| expires.parse().ok()),
    })
}

fn parse_role(text: &str) -> Option<Role> {
    match text {
        "admin" => Some(Role::Admin),
        "dentist" => Some(Role::Dentist),
        "receptionist" => Some(Role::Receptionist),
        _ => None,
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_stored_connection_parses_back_and_garbage_does_not() {
        let clinic = ClinicId(Uuid::nil());
        let user = Uuid::max().to_string();
        let fields: HashMap<String, String> = [
            ("user", user.as_str()),
            ("role", "dentist"),
            ("connected_at", "1795432000000"),
            ("since", "12"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let parsed = parse_connection("c1", clinic, &fields);
        assert_eq!(
            parsed,
            Some(LiveConnection {
                id: "c1".into(),
                clinic,
                user: UserId(Uuid::max()),
                role: Role::Dentist,
                connected_at_ms: 1_795_432_000_000,
                since: Some(12),
                token_expires_at_ms: None,
            })
        );
        let mut no_since = fields.clone();
        no_since.insert("since".into(), String::new());
        assert_eq!(
            parse_connection("c1", clinic, &no_since).and_then(|c| c.since),
            None
        );
        let mut bad_role = fields.clone();
        bad_role.insert("role".into(), "owner".into());
        assert_eq!(parse_connection("c1", clinic, &bad_role), None);
        assert_eq!(parse_connection("c1", clinic, &HashMap::new()), None);
    }

    #[test]
    fn a_connection_lives_two_hours_from_its_start() {
        let now = now_ms();
        let connection = LiveConnection {
            id: "c".into(),
            clinic: ClinicId(Uuid::nil()),
            user: UserId(Uuid::nil()),
            role: Role::Admin,
            connected_at_ms: now,
            since: None,
            token_expires_at_ms: None,
        };
        assert_eq!(connection.ends_at_ms(), now + 7_200_000);
        // A token that expires sooner ends the registration with it.
        let short = LiveConnection {
            token_expires_at_ms: Some(now + 600_000),
            ..connection.clone()
        };
        assert_eq!(short.ends_at_ms(), now + 600_000);
        assert!(!short.token_expired(now + 599_999));
        assert!(short.token_expired(now + 600_000));
        let long = LiveConnection {
            token_expires_at_ms: Some(now + 86_400_000),
            ..connection.clone()
        };
        assert_eq!(long.ends_at_ms(), now + 7_200_000);
        let ancient = LiveConnection {
            connected_at_ms: 0,
            ..connection
        };
        assert!(ancient.ends_at_ms() >= now + MINIMUM_LIFETIME_MS);
    }
}
