//! The one place Redis keys are spelled: `{env}:{area}:{clinic}:{name}:v{n}`.
//!
//! The prefix (`env`) separates deployments sharing a Redis and gives every test its own
//! namespace. Every tenant key carries the clinic id, so one clinic can never read another's value.
//! The clinic id is a hash tag (`{…}`): in cluster mode (ElastiCache Serverless) a clinic's keys
//! share a slot, so a value, its lease and the clinic's other keys can move together in one
//! Lua script.
//!
//! A cached value also names the generation counters it depends on ([`CacheKey::generations`]).
//! Bumping one counter invalidates every value that names it in O(1): all of one clinic's values,
//! or every clinic's catalog view when the global catalog changes — no `KEYS`, no `SCAN`.

use crate::auth::Role;
use crate::ids::{ClinicId, OrganizationId, PatientId, UserId};
use chrono::NaiveDate;

/// Bumped when a cached value's shape changes: old values are then never read.
const PATIENT_PROFILE_FORMAT: u32 = 1;
const CATALOG_VIEW_FORMAT: u32 = 1;
const DASHBOARD_FORMAT: u32 = 2;
const CLINIC_LIST_FORMAT: u32 = 1;
const ORGANIZATION_DASHBOARD_FORMAT: u32 = 1;
const AVAILABILITY_FORMAT: u32 = 2;
/// Bumped if what the queue keeps under its keys changes shape. 2: one ready list per clinic
/// and `known` a hash (1 had one shared list and a set); the sweep pushes the unfinished jobs
/// PostgreSQL has into the new keys, and the old ones are never read again.
const QUEUE_FORMAT: u32 = 2;
/// The counters' shape, which did not change with the queue's.
const QUEUE_STATS_FORMAT: u32 = 1;
/// Bumped if the WebSocket registry's hashes or sets change shape.
const WS_REGISTRY_FORMAT: u32 = 1;
/// Bumped if a rate-limit bucket's value (a theoretical arrival time in Unix µs) changes.
const RATE_FORMAT: u32 = 1;
/// Bumped if a caller's cached standing (`shared::access::standing`) changes shape.
const CALLER_FORMAT: u32 = 2;

/// Where a cached value lives and what invalidates it besides its own deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    /// The value itself.
    pub value: String,
    /// The fill lease beside it (same hash tag, same slot).
    pub lease: String,
    /// Generation counters the value was computed under; a bump of any one of them makes the
    /// value a miss.
    pub generations: Vec<String>,
    /// The clinic the value belongs to (for per-clinic metrics); `None` for shared values.
    pub clinic: Option<ClinicId>,
}

/// Where the job queue lives (see `shared::queue`): job ids only, never payloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueKeys {
    /// LIST of the clinics whose jobs became ready when they had none waiting, in order of
    /// arrival: the next claim serves them first.
    pub fresh: String,
    /// LIST, the ring the claims go round: the clinics with jobs ready that are not in `fresh`.
    pub active: String,
    /// Followed by a clinic id: the LIST of that clinic's job ids waiting to run, oldest first
    /// ([`QueueKeys::ready`]).
    pub ready_prefix: String,
    /// ZSET job id -> lease deadline (Unix ms) of the jobs a worker holds.
    pub processing: String,
    /// ZSET job id -> due time (Unix ms) of the jobs waiting for a retry.
    pub delayed: String,
    /// HASH job id -> clinic id of every job in a ready list, `processing` or `delayed`: what the
    /// sweep compares PostgreSQL with, and where a job moved by id alone finds its clinic's list.
    pub known: String,
    /// HASH of counters over every clinic (processed, failed, retried, dead, since).
    pub stats: String,
    /// ZSET drain id -> the Unix ms its presence lapses unless renewed: the drains alive now
    /// (`shared::queue::presence`).
    pub drains: String,
    /// STRING with a TTL: the token of the wake in flight (a worker invoked, not yet arrived).
    pub waking: String,
}

impl QueueKeys {
    /// The LIST of `clinic`'s job ids waiting to run, oldest first.
    pub fn ready(&self, clinic: ClinicId) -> String {
        format!("{}{clinic}", self.ready_prefix)
    }
}

/// Where one live WebSocket connection is registered (see `shared::realtime::registry`): every
/// key but the locator carries the clinic's hash tag, so one script registers or removes the
/// connection from every index of its clinic at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionKeys {
    /// HASH of the connection: clinic, user, role, connected_at, since.
    pub connection: String,
    /// SET of the clinic's connection ids.
    pub clinic: String,
    /// SET of the connection ids of one role in the clinic.
    pub role: String,
    /// SET of one user's connection ids (several tabs, phone and desktop).
    pub user: String,
    /// ZSET connection id -> when its registration ends (Unix ms), of the clinic: where the
    /// scheduler finds the connections to close ([`Keys::ws_ending`]).
    pub ending: String,
    /// STRING connection id -> clinic id: `$disconnect` and messages carry only the connection
    /// id. Tagged by the connection id (its own slot), so it is written and read on its own.
    pub locator: String,
}

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn patient_profile(&self, clinic: ClinicId, patient: PatientId) -> CacheKey {
        self.clinic_value(
            clinic,
            format!(
                "{}:patients:{{{clinic}}}:profile:{patient}:v{PATIENT_PROFILE_FORMAT}",
                self.prefix
            ),
            vec![],
        )
    }

    /// One clinic's merged view of a catalog kind (`procedure`, `insurer`): invalidated by the
    /// clinic's own overrides, by a clinic-wide invalidation and by any global catalog change.
    pub fn catalog_view(&self, clinic: ClinicId, kind: &str) -> CacheKey {
        self.clinic_value(
            clinic,
            format!(
                "{}:catalogs:{{{clinic}}}:view:{kind}:v{CATALOG_VIEW_FORMAT}",
                self.prefix
            ),
            vec![self.global_catalog_generation()],
        )
    }

    pub fn dashboard(&self, clinic: ClinicId) -> CacheKey {
        self.clinic_value(
            clinic,
            format!(
                "{}:dashboard:{{{clinic}}}:summary:v{DASHBOARD_FORMAT}",
                self.prefix
            ),
            vec![],
        )
    }

    /// An organization's rolled-up dashboard (no clinic's: a clinic's invalidation leaves it to
    /// its freshness, as the clinic's own cached dashboard is left).
    pub fn organization_dashboard(&self, organization: OrganizationId) -> CacheKey {
        let value = format!(
            "{}:organizations:{{{organization}}}:dashboard:v{ORGANIZATION_DASHBOARD_FORMAT}",
            self.prefix
        );
        CacheKey {
            lease: Self::lease(&value),
            value,
            generations: vec![],
            clinic: None,
        }
    }

    /// The list of active clinics (shared by every clinic; read by scheduled functions).
    pub fn clinic_list(&self) -> CacheKey {
        let value = format!(
            "{}:clinics:{{global}}:active:v{CLINIC_LIST_FORMAT}",
            self.prefix
        );
        CacheKey {
            lease: Self::lease(&value),
            value,
            generations: vec![],
            clinic: None,
        }
    }

    /// One clinic-day of free time (`shared::schedule::availability`): deleted by a booking
    /// that touches the day, dropped with every other day of the clinic by a bump of its
    /// [`schedule_generation`](Self::schedule_generation).
    pub fn availability_day(&self, clinic: ClinicId, date: NaiveDate) -> CacheKey {
        self.clinic_value(
            clinic,
            format!(
                "{}:availability:{{{clinic}}}:day:{date}:v{AVAILABILITY_FORMAT}",
                self.prefix
            ),
            vec![self.schedule_generation(clinic)],
        )
    }

    /// One of a clinic's few cached free-slot search answers (`shared::schedule::availability`'s
    /// `answers`): deleted, all of them, by every booking of the clinic, and dropped by a bump of
    /// its [`schedule_generation`](Self::schedule_generation).
    pub fn availability_answer(&self, clinic: ClinicId, slot: u64) -> CacheKey {
        self.clinic_value(
            clinic,
            format!(
                "{}:availability:{{{clinic}}}:answer:{slot}:v{AVAILABILITY_FORMAT}",
                self.prefix
            ),
            vec![self.schedule_generation(clinic)],
        )
    }

    /// A clinic's calendar settings (zone, grid, default length) as every free-slot search
    /// starts from them, dropped with its days.
    pub fn clinic_calendar(&self, clinic: ClinicId) -> CacheKey {
        self.clinic_value(
            clinic,
            format!(
                "{}:availability:{{{clinic}}}:calendar:v{AVAILABILITY_FORMAT}",
                self.prefix
            ),
            vec![self.schedule_generation(clinic)],
        )
    }

    /// Every cached day (and answer) of one clinic's free time names this counter.
    pub fn schedule_generation(&self, clinic: ClinicId) -> String {
        format!("{}:availability:{{{clinic}}}:generation", self.prefix)
    }

    /// Every cached value of one clinic names this counter.
    pub fn clinic_generation(&self, clinic: ClinicId) -> String {
        format!("{}:cache:{{{clinic}}}:generation", self.prefix)
    }

    /// Every clinic's catalog view names this counter.
    pub fn global_catalog_generation(&self) -> String {
        format!("{}:catalogs:{{global}}:generation", self.prefix)
    }

    /// Cache counters (hits, misses, loads…) of one clinic, or of all clinics together.
    pub fn cache_stats(&self, clinic: Option<ClinicId>) -> String {
        match clinic {
            Some(clinic) => format!("{}:cache:{{{clinic}}}:stats:v1", self.prefix),
            None => format!("{}:cache:{{global}}:stats:v1", self.prefix),
        }
    }

    /// The job queue's keys. They share one hash tag (`{jobs}`), so every script that moves a
    /// job between them runs on one cluster slot.
    pub fn queue(&self) -> QueueKeys {
        let key = |name: &str| format!("{}:queue:{{jobs}}:{name}:v{QUEUE_FORMAT}", self.prefix);
        QueueKeys {
            fresh: key("fresh"),
            active: key("active"),
            ready_prefix: format!("{}:", key("ready")),
            processing: key("processing"),
            delayed: key("delayed"),
            known: key("known"),
            stats: format!("{}:queue:{{jobs}}:stats:v{QUEUE_STATS_FORMAT}", self.prefix),
            drains: key("drains"),
            waking: key("waking"),
        }
    }

    /// Job counters of one clinic (processed, failed, dead…), kept beside its other keys.
    pub fn queue_stats(&self, clinic: ClinicId) -> String {
        format!(
            "{}:queue:{{{clinic}}}:stats:v{QUEUE_STATS_FORMAT}",
            self.prefix
        )
    }

    /// The registry keys of one WebSocket connection of `user` (with `role`) in `clinic`.
    pub fn ws_connection(
        &self,
        clinic: ClinicId,
        role: Role,
        user: UserId,
        connection_id: &str,
    ) -> ConnectionKeys {
        ConnectionKeys {
            connection: format!(
                "{}:ws:{{{clinic}}}:conn:{connection_id}:v{WS_REGISTRY_FORMAT}",
                self.prefix
            ),
            clinic: self.ws_clinic_connections(clinic),
            role: self.ws_role_connections(clinic, role),
            user: self.ws_user_connections(clinic, user),
            ending: self.ws_ending(clinic),
            locator: self.ws_locator(connection_id),
        }
    }

    /// The clinic's ZSET of connection id -> when its registration ends (Unix ms).
    pub fn ws_ending(&self, clinic: ClinicId) -> String {
        format!(
            "{}:ws:{{{clinic}}}:ending:v{WS_REGISTRY_FORMAT}",
            self.prefix
        )
    }

    /// The connection's own hash, when only the clinic and the id are known.
    pub fn ws_connection_hash(&self, clinic: ClinicId, connection_id: &str) -> String {
        format!(
            "{}:ws:{{{clinic}}}:conn:{connection_id}:v{WS_REGISTRY_FORMAT}",
            self.prefix
        )
    }

    /// SET of every live connection id of a clinic.
    pub fn ws_clinic_connections(&self, clinic: ClinicId) -> String {
        format!(
            "{}:ws:{{{clinic}}}:clinic:v{WS_REGISTRY_FORMAT}",
            self.prefix
        )
    }

    /// SET of the live connection ids of one role in a clinic.
    pub fn ws_role_connections(&self, clinic: ClinicId, role: Role) -> String {
        format!(
            "{}:ws:{{{clinic}}}:role:{}:v{WS_REGISTRY_FORMAT}",
            self.prefix,
            role.as_str()
        )
    }

    /// SET of the live connection ids of one user of a clinic.
    pub fn ws_user_connections(&self, clinic: ClinicId, user: UserId) -> String {
        format!(
            "{}:ws:{{{clinic}}}:user:{user}:v{WS_REGISTRY_FORMAT}",
            self.prefix
        )
    }

    /// STRING connection id -> clinic id.
    pub fn ws_locator(&self, connection_id: &str) -> String {
        format!(
            "{}:ws:{{{connection_id}}}:locator:v{WS_REGISTRY_FORMAT}",
            self.prefix
        )
    }

    /// ZSET clinic id -> when its newest connection ends (Unix ms): the clinics an announcement
    /// to everyone has to visit, and no others.
    pub fn ws_live_clinics(&self) -> String {
        format!(
            "{}:ws:{{global}}:clinics:v{WS_REGISTRY_FORMAT}",
            self.prefix
        )
    }

    /// A user's cached standing in a clinic (`shared::access`): role, active, operator.
    pub fn caller_user(&self, clinic: ClinicId, user: UserId) -> String {
        format!(
            "{}:caller:{{{clinic}}}:user:{user}:v{CALLER_FORMAT}",
            self.prefix
        )
    }

    /// A clinic's cached standing (`shared::access`): whether it is archived.
    pub fn caller_clinic(&self, clinic: ClinicId) -> String {
        format!(
            "{}:caller:{{{clinic}}}:clinic:v{CALLER_FORMAT}",
            self.prefix
        )
    }

    /// The rate-limit bucket of a whole clinic for one class of routes.
    pub fn rate_clinic_bucket(&self, clinic: ClinicId, class: &str) -> String {
        format!(
            "{}:rate:{{{clinic}}}:clinic:{class}:v{RATE_FORMAT}",
            self.prefix
        )
    }

    /// The rate-limit bucket of one user of a clinic for one class of routes: under the
    /// clinic's hash tag, so it is checked together with the clinic's in one script.
    pub fn rate_user_bucket(&self, clinic: ClinicId, user: UserId, class: &str) -> String {
        format!(
            "{}:rate:{{{clinic}}}:user:{user}:{class}:v{RATE_FORMAT}",
            self.prefix
        )
    }

    /// The fill lease of a cached value: same hash tag, so the same slot.
    pub fn lease(value_key: &str) -> String {
        format!("{value_key}:lease")
    }

    /// A clinic's value: depends on the clinic's generation plus `more`.
    fn clinic_value(&self, clinic: ClinicId, value: String, more: Vec<String>) -> CacheKey {
        let mut generations = vec![self.clinic_generation(clinic)];
        generations.extend(more);
        CacheKey {
            lease: Self::lease(&value),
            value,
            generations,
            clinic: Some(clinic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn patient_key_carries_env_clinic_and_format_version() {
        let clinic = ClinicId(Uuid::nil());
        let patient = PatientId(Uuid::max());
        let key = Keys::new("dev").patient_profile(clinic, patient);
        assert_eq!(
            key.value,
            format!(
                "dev:patients:{{{}}}:profile:{}:v1",
                Uuid::nil(),
                Uuid::max()
            )
        );
        assert_eq!(key.lease, format!("{}:lease", key.value));
        assert_eq!(
            key.generations,
            vec![format!("dev:cache:{{{}}}:generation", Uuid::nil())]
        );
        assert_eq!(key.clinic, Some(clinic));
    }

    #[test]
    fn a_connection_s_indexes_share_its_clinic_s_hash_tag() {
        let clinic = ClinicId(Uuid::nil());
        let user = UserId(Uuid::max());
        let keys =
            Keys::new("dev").ws_connection(clinic, Role::Receptionist, user, "L0SM9cOFvHcCIhw=");
        let tag = format!("dev:ws:{{{}}}:", Uuid::nil());
        for key in [&keys.connection, &keys.clinic, &keys.role, &keys.user] {
            assert!(key.starts_with(&tag), "{key}");
        }
        assert_eq!(keys.role, format!("{tag}role:receptionist:v1"));
        assert_eq!(keys.user, format!("{tag}user:{}:v1", Uuid::max()));
        assert_eq!(keys.ending, format!("{tag}ending:v1"));
        assert_eq!(keys.locator, "dev:ws:{L0SM9cOFvHcCIhw=}:locator:v1");
        assert_eq!(
            keys.connection,
            Keys::new("dev").ws_connection_hash(clinic, "L0SM9cOFvHcCIhw=")
        );
    }

    #[test]
    fn the_queue_keys_share_one_hash_tag() {
        let keys = Keys::new("dev").queue();
        let clinic = ClinicId(Uuid::nil());
        for key in [
            &keys.fresh,
            &keys.active,
            &keys.ready(clinic),
            &keys.processing,
            &keys.delayed,
            &keys.known,
            &keys.stats,
            &keys.drains,
            &keys.waking,
        ] {
            assert!(key.starts_with("dev:queue:{jobs}:"), "{key}");
        }
        assert_eq!(keys.active, "dev:queue:{jobs}:active:v2");
        assert_eq!(
            keys.ready(clinic),
            format!("dev:queue:{{jobs}}:ready:v2:{clinic}")
        );
        assert_eq!(keys.stats, "dev:queue:{jobs}:stats:v1");
    }

    #[test]
    fn a_catalog_view_depends_on_its_clinic_and_on_the_global_catalog() {
        let keys = Keys::new("dev");
        let clinic = ClinicId(Uuid::nil());
        let key = keys.catalog_view(clinic, "procedure");
        assert_eq!(
            key.generations,
            vec![
                keys.clinic_generation(clinic),
                keys.global_catalog_generation()
            ]
        );
        assert!(key.value.contains(":view:procedure:"));
    }
}
