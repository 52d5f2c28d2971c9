//! Adding, listing and removing waiting-list entries, each change in the audit trail.

use super::repository::{self, Filter};
use super::{NewEntry, WaitingListEntry, WaitingListQuery};
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::auth::Role;
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::ids::{ClinicId, UserId, WaitingListEntryId};
use crate::input::InputError;
use crate::pagination::{Page, PageRequest};
use crate::schedule::availability::procedure_minutes;
use crate::schedule::calendar;
use crate::schedule::capacity::{cached_calendar, clinic_calendar};
use crate::schedule::repository::{Lock, member_role};
use crate::state::AppState;
use chrono::Utc;

/// Notes are free text: the trail says they changed, not what they say.
const AUDITED: FieldPolicy = FieldPolicy {
    ignored: &["id", "created_at"],
    redacted: &["notes"],
};

pub struct WaitingListService<'a> {
    state: &'a AppState,
}

impl<'a> WaitingListService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self { state }
    }

    /// The clinic's date today and its default appointment length, from its cached calendar:
    /// what a new entry is checked against and lasts when nothing else says.
    pub async fn today(&self, clinic: ClinicId) -> Result<(chrono::NaiveDate, u32), ApiError> {
        let calendar = cached_calendar(self.state, clinic).await?;
        Ok((
            calendar::local_date(calendar.zone, Utc::now()),
            calendar.default_minutes,
        ))
    }

    /// Adds `entry`, which lasts its own minutes, else its procedure's, else `default_minutes`
    /// (the clinic's, from [`Self::today`]).
    pub async fn add(
        &self,
        clinic: ClinicId,
        (actor, created_by): (&Actor, UserId),
        entry: &NewEntry,
        default_minutes: u32,
    ) -> Result<WaitingListEntry, ApiError> {
        // The catalog is read through its cache, before the transaction.
        let procedure = match entry.procedure_code.as_deref() {
            Some(code) => {
                procedure_minutes(
                    self.state,
                    clinic,
                    ("procedure_code", code),
                    InputError::invalid,
                )
                .await?
            }
            None => None,
        };
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let minutes = entry
            .duration_minutes
            .or(procedure)
            .unwrap_or(default_minutes);
        match crate::patients::repository::archived_for_update(&mut tx, clinic, entry.patient_id)
            .await
            .map_err(DbError::from)?
        {
            None => {
                return Err(ApiError::validation(
                    "patient_id",
                    "no such patient in your clinic",
                ));
            }
            Some(true) => {
                return Err(ApiError::validation(
                    "patient_id",
                    "the patient is archived; archived patients cannot wait for appointments",
                ));
            }
            Some(false) => {}
        }
        if let Some(dentist) = entry.dentist_id {
            match member_role(&mut tx, clinic, dentist, Lock::None)
                .await
                .map_err(DbError::from)?
            {
                Some((Role::Dentist, true)) => {}
                _ => {
                    return Err(ApiError::validation(
                        "dentist_id",
                        "no such active dentist in your clinic",
                    ));
                }
            }
        }
        let added = repository::insert(&mut tx, clinic, created_by, entry, minutes)
            .await
            .map_err(DbError::from)?;
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::WaitingListAdd,
            &added.id.to_string(),
            &Changes::between(None, Some(&added), &AUDITED),
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(added)
    }

    pub async fn list(
        &self,
        clinic: ClinicId,
        query: &WaitingListQuery,
    ) -> Result<Page<WaitingListEntry>, ApiError> {
        let page = PageRequest::new(query.limit, query.cursor.as_deref())?;
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let zone = clinic_calendar(&mut tx, clinic).await?.zone;
        let filter = Filter {
            dentist: query.dentist_id,
            patient: query.patient_id,
            expired: query.expired.unwrap_or(false),
            today: calendar::local_date(zone, Utc::now()),
        };
        let rows = repository::list(&mut tx, clinic, &filter, &page)
            .await
            .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(Page::from_rows(rows, page.limit, |entry| {
            (entry.created_at, entry.id)
        }))
    }

    pub async fn remove(
        &self,
        clinic: ClinicId,
        actor: &Actor,
        id: WaitingListEntryId,
    ) -> Result<(), ApiError> {
        let mut tx = db::begin_tenant(&self.state.db, clinic).await?;
        let removed = repository::delete(&mut tx, clinic, id)
            .await
            .map_err(DbError::from)?
            .ok_or(ApiError::NotFound {
                what: "waiting list entry",
            })?;
        audit::record(
            &mut tx,
            actor,
            Some(clinic),
            Action::WaitingListRemove,
            &id.to_string(),
            &Changes::between(Some(&removed), None, &AUDITED),
        )
        .await
        .map_err(DbError::from)?;
        tx.commit().await.map_err(DbError::from)?;
        Ok(())
    }
}
