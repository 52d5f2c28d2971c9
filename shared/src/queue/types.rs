//! The queue's vocabulary: what a context stages, what a handler receives and answers, and the
//! states a job goes through.

use crate::auth::Role;
use crate::db::DbError;
use crate::http::ApiError;
use crate::ids::{ClinicId, JobId, UserId};
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Attempts a job gets unless its kind or the job itself says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u8 = 3;
/// The `jobs.max_attempts` check constraint.
pub const MAX_ATTEMPTS_LIMIT: u8 = 25;
/// The `jobs.last_error` check constraint, in characters.
pub const LAST_ERROR_LIMIT: usize = 4_000;

/// A kind of job, named like `xray.analyze` (the `jobs.kind` check: `^[a-z][a-z0-9_.]{1,63}$`).
///
/// Contexts declare theirs as constants, so a misspelt name fails the build, not a job:
/// `pub const XRAY_ANALYZE: JobKind = JobKind::new("xray.analyze");`. A kind may ask for more or
/// fewer attempts than the default three: `JobKind::new("report.render").with_max_attempts(5)`,
/// and may keep its jobs from some of the clinic's staff: `.readable_by(&[Role::Admin])`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobKind {
    name: &'static str,
    max_attempts: u8,
    readers: Option<&'static [Role]>,
    peak_memory_mib: u32,
}

/// What a job of a kind that says nothing holds at its peak: a few small rows and a JSON
/// result. The worker runs such jobs as wide as its slots allow.
pub const DEFAULT_PEAK_MEMORY_MIB: u32 = 2;
/// The largest Lambda function's memory: no job can need more.
pub const MAX_PEAK_MEMORY_MIB: u32 = 10_240;

impl JobKind {
    /// Panics at compile time (in a `const`) when `name` does not fit the `jobs.kind` check.
    pub const fn new(name: &'static str) -> Self {
        assert!(
            is_valid_kind(name),
            "a job kind is 2..=64 characters of a-z, 0-9, '_' or '.', starting with a letter"
        );
        Self {
            name,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            readers: None,
            peak_memory_mib: DEFAULT_PEAK_MEMORY_MIB,
        }
    }

    /// How many times a job of this kind runs before it is dead (1..=25).
    pub const fn with_max_attempts(self, max_attempts: u8) -> Self {
        assert!(
            max_attempts >= 1 && max_attempts <= MAX_ATTEMPTS_LIMIT,
            "max_attempts must be between 1 and 25"
        );
        Self {
            max_attempts,
            ..self
        }
    }

    /// Only these roles of the clinic may read its jobs (`GET /jobs/{id}`); by default, every
    /// member. Stored on each job when it is staged.
    pub const fn readable_by(self, roles: &'static [Role]) -> Self {
        assert!(!roles.is_empty(), "a job kind needs at least one reader");
        Self {
            readers: Some(roles),
            ..self
        }
    }

    pub const fn readers(&self) -> Option<&'static [Role]> {
        self.readers
    }

    /// The most memory one job of this kind holds at once: the worker starts it only when
    /// that fits beside what already runs (`shared::queue::worker::admission`).
    pub const fn with_peak_memory_mib(self, mib: u32) -> Self {
        assert!(
            mib >= 1 && mib <= MAX_PEAK_MEMORY_MIB,
            "a job's peak memory is 1..=10240 MiB (the `jobs.peak_memory_mib` check)"
        );
        Self {
            peak_memory_mib: mib,
            ..self
        }
    }

    pub const fn peak_memory_mib(&self) -> u32 {
        self.peak_memory_mib
    }

    pub const fn as_str(&self) -> &'static str {
        self.name
    }

    pub const fn max_attempts(&self) -> u8 {
        self.max_attempts
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

const fn is_valid_kind(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.len() < 2 || bytes.len() > 64 || !bytes[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

/// The `Idempotency-Key` request header: 1..=255 visible ASCII characters, unique per clinic.
/// A repeat of a request with the same key gets the job the first one created.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// How the contract describes the `Idempotency-Key` header of the routes that read one.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1–255 visible ASCII characters, unique per clinic (a UUID is a good one). A repeat with
    /// the same key answers what the first request did, with `Idempotent-Replayed: true`, and
    /// does nothing again.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$"
    )]
    pub idempotency_key: Option<String>,
}

impl IdempotencyKey {
    /// The key of a request, if it sent one; 400 naming the header when it is malformed (sent
    /// twice, empty, too long, or not visible ASCII). A key wrapped in double quotes (the IETF
    /// draft's structured-field string) is taken without them.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let mut values = headers.get_all(IDEMPOTENCY_KEY_HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(malformed("send it once"));
        }
        let text = value
            .to_str()
            .map_err(|_| malformed("use visible ASCII characters only"))?;
        Self::parse(text).map(Some)
    }

    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let text = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => inner,
            None => text,
        };
        if text.is_empty() || text.len() > 255 {
            return Err(malformed("use 1 to 255 characters"));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("use visible ASCII characters only (no spaces)"));
        }
        Ok(Self(text.to_string()))
    }

    /// A key Pulso makes for its own jobs (a scheduled task's window): `kind:window`, always
    /// valid, and unlike any key a client sends with a UUID.
    pub fn scheduled(kind: JobKind, window: i64) -> Self {
        Self(format!("{}:{window}", kind.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn malformed(hint: &str) -> ApiError {
    ApiError::BadRequest {
        detail: format!("The Idempotency-Key header is malformed: {hint}."),
        field: Some("Idempotency-Key".into()),
    }
}

/// A job to stage inside a domain transaction.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub kind: JobKind,
    /// What the handler needs (ids, not clinical text): the row stores it, Redis never sees it.
    pub payload: serde_json::Value,
    pub idempotency_key: Option<IdempotencyKey>,
    pub created_by: Option<UserId>,
    /// Overrides the kind's attempts (1..=25).
    pub max_attempts: Option<u8>,
}

/// What [`crate::queue::Queue::stage`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagedJob {
    pub id: JobId,
    pub clinic: ClinicId,
    /// Its kind's peak memory, MiB: what the claim weighs it by.
    pub peak_memory_mib: u32,
    /// `false`: the idempotency key matched an earlier job of this clinic, whose id this is; the
    /// caller answers with the existing resource (and rolls back whatever it was creating).
    pub created: bool,
}

/// What a handler receives.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: JobId,
    pub clinic: ClinicId,
    pub kind: String,
    pub payload: serde_json::Value,
    /// 1 on the first run. A job may run more than once (at-least-once delivery): handlers
    /// must be idempotent.
    pub attempt: u32,
    pub max_attempts: u32,
    pub created_by: Option<UserId>,
}

/// Why a handler gave up on this attempt. Messages are stored in `jobs.last_error`, shown to the
/// clinic's staff and logged: never put clinical text in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobFailure {
    /// Worth another attempt (a dependency was down, a timeout): retried with backoff until the
    /// job's attempts run out, then dead.
    Retry(String),
    /// Will never work (a corrupt image, a row that is gone): dead at once.
    Permanent(String),
}

impl JobFailure {
    pub fn retry(message: impl fmt::Display) -> Self {
        JobFailure::Retry(message.to_string())
    }

    pub fn permanent(message: impl fmt::Display) -> Self {
        JobFailure::Permanent(message.to_string())
    }

    pub fn message(&self) -> &str {
        match self {
            JobFailure::Retry(message) | JobFailure::Permanent(message) => message,
        }
    }
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobFailure::Retry(message) => write!(f, "retry: {message}"),
            JobFailure::Permanent(message) => write!(f, "permanent: {message}"),
        }
    }
}

/// A database failure inside a handler is worth retrying (`?` on repository calls).
impl From<DbError> for JobFailure {
    fn from(error: DbError) -> Self {
        JobFailure::Retry(crate::telemetry::ErrorChain(&error).to_string())
    }
}

impl From<sqlx::Error> for JobFailure {
    fn from(error: sqlx::Error) -> Self {
        JobFailure::from(DbError::from(error))
    }
}

/// `jobs.status`.
///
/// `failed` is not final: the last attempt failed and a retry is scheduled (`run_at`). The final
/// states are `succeeded` and `dead` (out of attempts, or a permanent failure; an admin may
/// replay it).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "job_status", rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Dead,
}

impl JobStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Dead)
    }
}

/// A job row as the status views read it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobRecord {
    pub id: JobId,
    pub clinic_id: ClinicId,
    pub kind: String,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub replays: i32,
    pub run_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
    pub created_by: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The roles that may read the job; `None`: every member of its clinic.
    pub readers: Option<Vec<Role>>,
    /// What a claim weighs the job by (MiB), copied from its kind when it was staged.
    pub peak_memory_mib: i32,
}

impl JobRecord {
    pub fn readable_by(&self, role: Role) -> bool {
        self.readers
            .as_ref()
            .is_none_or(|readers| readers.contains(&role))
    }
}

/// Cuts `message` to what `jobs.last_error` holds, on a character boundary.
pub(crate) fn truncate_error(message: &str) -> String {
    match message.char_indices().nth(LAST_ERROR_LIMIT) {
        Some((index, _)) => message[..index].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn kinds_follow_the_column_check() {
        assert!(is_valid_kind("xray.analyze"));
        assert!(is_valid_kind("report.render_pdf2"));
        for bad in [
            "",
            "x",
            "Xray",
            "1job",
            "job-kind",
            "job kind",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_kind(bad), "{bad}");
        }
        const KIND: JobKind = JobKind::new("test.kind").with_max_attempts(5);
        assert_eq!(KIND.as_str(), "test.kind");
        assert_eq!(KIND.max_attempts(), 5);
        assert_eq!(JobKind::new("a.b").max_attempts(), DEFAULT_MAX_ATTEMPTS);
    }

    #[test]
    fn idempotency_keys_are_parsed_at_the_edge() {
        let mut headers = HeaderMap::new();
        assert_eq!(IdempotencyKey::from_headers(&headers).unwrap(), None);
        headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(
            IdempotencyKey::from_headers(&headers)
                .unwrap()
                .unwrap()
                .as_str(),
            "abc-123"
        );
        headers.insert(
            IDEMPOTENCY_KEY_HEADER,
            HeaderValue::from_static("\"quoted\""),
        );
        assert_eq!(
            IdempotencyKey::from_headers(&headers)
                .unwrap()
                .unwrap()
                .as_str(),
            "quoted"
        );
        for bad in ["", "has space", "\"\"", &"k".repeat(256)] {
            let mut headers = HeaderMap::new();
            headers.insert(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_str(bad).unwrap());
            let error = IdempotencyKey::from_headers(&headers).expect_err(bad);
            assert_eq!(error.status(), 400, "{bad}");
        }
        let mut twice = HeaderMap::new();
        twice.append(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("a"));
        twice.append(IDEMPOTENCY_KEY_HEADER, HeaderValue::from_static("b"));
        assert!(IdempotencyKey::from_headers(&twice).is_err());
        let mut latin1 = HeaderMap::new();
        latin1.insert(
            IDEMPOTENCY_KEY_HEADER,
            HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        assert!(IdempotencyKey::from_headers(&latin1).is_err());
    }

    #[test]
    fn errors_are_cut_on_a_character_boundary() {
        let long = "é".repeat(LAST_ERROR_LIMIT + 10);
        assert_eq!(truncate_error(&long).chars().count(), LAST_ERROR_LIMIT);
        assert_eq!(truncate_error("short"), "short");
    }
}
