//! Patient use cases: the transaction boundaries and the cache-aside around the profile.

use super::repository;
use super::types::{NewPatient, PatientChanges, PatientRecord, PatientResponse, PatientSearch};
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::cache::{Cache, PATIENT_PROFILE, Prefetched};
use crate::contact::Country;
use crate::db::{self, DbError};
use crate::http::conditional::{IfMatch, precondition_holds};
use crate::http::{ApiError, ConflictKind};
use crate::ids::{ClinicId, PatientId};
use crate::input::InputError;
use crate::keys::{CacheKey, Keys};
use crate::pagination::{Page, PageRequest};
use crate::state::AppState;
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum PatientError {
    #[error("patient not found")]
    NotFound,
    #[error("patient is archived")]
    Archived,
    #[error("another patient of the clinic has this national id")]
    DuplicateNationalId,
    /// `If-Match` named a version that is no longer current.
    #[error("the patient changed since the version in If-Match")]
    PreconditionFailed,
    /// A field that is well formed but not valid for the clinic (a phone number of another
    /// country typed without its code).
    #[error(transparent)]
    Invalid(#[from] InputError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for PatientError {
    fn from(error: sqlx::Error) -> Self {
        let error = DbError::from(error);
        match error.constraint() {
            Some("patients_clinic_national_id_key") => PatientError::DuplicateNationalId,
            _ => PatientError::Db(error),
        }
    }
}

impl From<PatientError> for ApiError {
    fn from(error: PatientError) -> Self {
        match error {
            PatientError::NotFound => ApiError::NotFound { what: "patient" },
            PatientError::PreconditionFailed => ApiError::PreconditionFailed { what: "patient" },
            PatientError::Archived => ApiError::Conflict {
                kind: ConflictKind::PatientArchived,
                detail: "The patient is archived; archived records cannot be changed.".into(),
                field: None,
            },
            PatientError::DuplicateNationalId => ApiError::Conflict {
                kind: ConflictKind::DuplicateNationalId,
                detail: "Another patient of this clinic already has this national id.".into(),
                field: Some("national_id".into()),
            },
            PatientError::Invalid(error) => error.into(),
            PatientError::Db(error) => error.into(),
        }
    }
}

/// What the audit trail keeps of a patient's record: the administrative fields with their
/// values; the notes (clinical free text) only as changed.
const AUDITED: FieldPolicy = FieldPolicy {
    ignored: &["id", "created_at", "updated_at"],
    redacted: &["notes"],
};

pub struct PatientService<'a> {
    db: &'a PgPool,
    cache: &'a Cache,
    keys: &'a Keys,
}

impl<'a> PatientService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            db: &state.db,
            cache: &state.cache,
            keys: &state.keys,
        }
    }

    /// Registers the patient and records it in the audit trail, in one transaction.
    pub async fn register(
        &self,
        clinic: ClinicId,
        patient: &NewPatient,
        actor: &Actor,
    ) -> Result<PatientRecord, PatientError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let phone = match &patient.phone {
            Some(phone) => Some(phone.in_country(Country::of_clinic(&mut tx, clinic).await?)?),
            None => None,
        };
        let record = repository::insert(&mut tx, clinic, patient, phone.as_ref()).await?;
        let after = PatientResponse::from(record.clone());
        let changes = Changes::between(None, Some(&after), &AUDITED);
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::PatientCreate,
            &record.id.to_string(),
            &changes,
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Where the profile is cached: the request gate reads it ahead (`shared::access::Caller`).
    pub fn profile_key(&self, clinic: ClinicId, id: PatientId) -> CacheKey {
        self.keys.patient_profile(clinic, id)
    }

    /// The patient profile, read through the cache, starting from what the gate read of it.
    pub async fn profile(
        &self,
        clinic: ClinicId,
        id: PatientId,
        prefetched: Prefetched,
    ) -> Result<PatientRecord, PatientError> {
        let key = self.profile_key(clinic, id);
        self.cache
            .get_or_load_prefetched(PATIENT_PROFILE, &key, prefetched, || async {
                let mut tx = db::begin_tenant(self.db, clinic).await?;
                let record = repository::find(&mut tx, clinic, id, false).await?;
                tx.commit().await?;
                Ok::<_, PatientError>(record)
            })
            .await?
            .ok_or(PatientError::NotFound)
    }

    pub async fn search(
        &self,
        clinic: ClinicId,
        search: &PatientSearch,
        include_archived: bool,
        page: &PageRequest<(String, PatientId)>,
    ) -> Result<Page<PatientRecord>, PatientError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let rows = repository::list(&mut tx, clinic, search, include_archived, page).await?;
        tx.commit().await?;
        Ok(Page::from_rows(rows, page.limit, |p| {
            (p.search_name.clone(), p.id)
        }))
    }

    /// Writes PostgreSQL, commits, then invalidates the cached profile. With `if_match`, only
    /// while the patient is still the version it names, checked under the row lock.
    pub async fn update(
        &self,
        clinic: ClinicId,
        id: PatientId,
        changes: &PatientChanges,
        if_match: Option<&IfMatch>,
        actor: &Actor,
    ) -> Result<PatientRecord, PatientError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let current = repository::find(&mut tx, clinic, id, true)
            .await?
            .ok_or(PatientError::NotFound)?;
        if !precondition_holds(if_match, || Some(PatientResponse::from(current.clone()))) {
            return Err(PatientError::PreconditionFailed);
        }
        if current.archived_at.is_some() {
            return Err(PatientError::Archived);
        }
        let phone = match &changes.phone {
            Some(Some(phone)) => Some(Some(
                phone.in_country(Country::of_clinic(&mut tx, clinic).await?)?,
            )),
            Some(None) => Some(None),
            None => None,
        };
        let record = repository::update(
            &mut tx,
            &current,
            changes,
            phone.as_ref().map(Option::as_ref),
        )
        .await?;
        let before = PatientResponse::from(current);
        let after = PatientResponse::from(record.clone());
        let changed = Changes::between(Some(&before), Some(&after), &AUDITED);
        if !changed.is_empty() {
            audit::record(
                &mut tx,
                actor,
                Some(clinic),
                Action::PatientUpdate,
                &id.to_string(),
                &changed,
            )
            .await?;
        }
        tx.commit().await?;
        self.cache
            .invalidate(PATIENT_PROFILE, &self.keys.patient_profile(clinic, id))
            .await;
        Ok(record)
    }

    /// Archives (never erases) a patient: the record and its history stay for the clinic's
    /// legal retention period; lists hide it by default. Archiving an archived patient changes
    /// nothing and records nothing.
    pub async fn archive(
        &self,
        clinic: ClinicId,
        id: PatientId,
        actor: &Actor,
    ) -> Result<PatientRecord, PatientError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let current = repository::find(&mut tx, clinic, id, true)
            .await?
            .ok_or(PatientError::NotFound)?;
        if current.archived_at.is_some() {
            tx.commit().await?;
            return Ok(current);
        }
        let record = repository::archive(&mut tx, clinic, id)
            .await?
            .ok_or(PatientError::NotFound)?;
        let changed = Changes::between(
            Some(&PatientResponse::from(current)),
            Some(&PatientResponse::from(record.clone())),
            &AUDITED,
        );
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::PatientArchive,
            &id.to_string(),
            &changed,
        )
        .await?;
        tx.commit().await?;
        self.cache
            .invalidate(PATIENT_PROFILE, &self.keys.patient_profile(clinic, id))
            .await;
        Ok(record)
    }
}
