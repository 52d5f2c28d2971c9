//! `GET /agenda`: one clinic day per dentist, in one call, for a calendar screen — their working
//! hours, time off, live appointments (with the patient's name) and the gaps left between them.
//! Read in one transaction, so the four parts agree with each other.

use super::repository;
use super::service::AppointmentError;
use super::types::{AppointmentResponse, IncludedName};
use crate::db;
use crate::http::ApiError;
use crate::ids::{ClinicId, PatientId, UserId};
use crate::input::InputError;
use crate::schedule::calendar::{self, Span};
use crate::schedule::{TimeOff, plan_day, plausible_date};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgendaQuery {
    /// The clinic date (default: today in the clinic's zone).
    pub date: Option<NaiveDate>,
    /// Only this dentist (default: every active dentist, and anyone booked that day).
    pub dentist_id: Option<UserId>,
}

/// A stretch of the day.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Interval {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl From<&Span> for Interval {
    fn from(span: &Span) -> Self {
        Self {
            starts_at: span.start,
            ends_at: span.end,
        }
    }
}

/// One dentist's day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DentistDay {
    pub dentist_id: UserId,
    pub name: String,
    /// Working hours that day (empty: not working, or booked with an admin's override).
    pub hours: Vec<Interval>,
    /// Their time off and the clinic's closures overlapping the day.
    pub time_off: Vec<TimeOff>,
    /// Every appointment that is not cancelled, by start, with the patient's name.
    pub appointments: Vec<AppointmentResponse>,
    /// The working time left: hours less time off and appointments.
    pub gaps: Vec<Interval>,
}

/// `GET /agenda`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agenda {
    pub date: NaiveDate,
    pub timezone: String,
    /// By name.
    pub dentists: Vec<DentistDay>,
}

/// The clinic's day as `query` asks.
pub async fn agenda(
    db: &PgPool,
    clinic: ClinicId,
    query: &AgendaQuery,
) -> Result<Agenda, ApiError> {
    if let Some(date) = query.date
        && plausible_date("date", date).is_err()
    {
        return Err(InputError::malformed("date", "date must be from 2000 to 2100").into());
    }
    let mut tx = db::begin_tenant(db, clinic)
        .await
        .map_err(AppointmentError::from)?;
    let zone = crate::schedule::clinic_calendar(&mut tx, clinic)
        .await?
        .zone;
    let date = query
        .date
        .unwrap_or_else(|| calendar::local_date(zone, Utc::now()));
    let plan = plan_day(&mut tx, (clinic, zone), date, query.dentist_id).await?;
    let booked = repository::live_within(&mut tx, clinic, &plan.day, query.dentist_id)
        .await
        .map_err(AppointmentError::from)?;
    let mut dentists: Vec<UserId> = plan.hours.keys().copied().collect();
    dentists.extend(booked.iter().map(|appointment| appointment.dentist_id));
    if let Some(wanted) = query.dentist_id {
        dentists.push(wanted);
    }
    dentists.sort_unstable();
    dentists.dedup();
    let patients: Vec<PatientId> = booked
        .iter()
        .map(|appointment| appointment.patient_id)
        .collect();
    let patient_names: HashMap<PatientId, String> =
        repository::patient_names(&mut tx, clinic, &patients)
            .await
            .map_err(AppointmentError::from)?
            .into_iter()
            .collect();
    let names: HashMap<UserId, String> = repository::user_names(&mut tx, clinic, &dentists)
        .await
        .map_err(AppointmentError::from)?
        .into_iter()
        .collect();
    tx.commit().await.map_err(AppointmentError::from)?;

    let mut by_dentist: BTreeMap<UserId, Vec<AppointmentResponse>> = BTreeMap::new();
    for record in booked {
        let patient = patient_names.get(&record.patient_id).cloned();
        let mut appointment = AppointmentResponse::from(record);
        appointment.patient = patient.map(|name| IncludedName { name });
        by_dentist
            .entry(appointment.dentist_id)
            .or_default()
            .push(appointment);
    }
    let mut days: Vec<DentistDay> = dentists
        .into_iter()
        // A dentist asked for by id who is not the clinic's is a 404, like their other rows.
        .filter_map(|dentist| Some((dentist, names.get(&dentist)?.clone())))
        .map(|(dentist, name)| {
            let hours = plan.hours.get(&dentist).cloned().unwrap_or_default();
            let time_off: Vec<TimeOff> = plan
                .time_off
                .iter()
                .filter(|off| off.dentist_id.is_none_or(|whose| whose == dentist))
                .cloned()
                .collect();
            let appointments = by_dentist.remove(&dentist).unwrap_or_default();
            let taken: Vec<Span> = time_off
                .iter()
                .filter_map(|off| Span::new(off.starts_at, off.ends_at))
                .chain(
                    appointments
                        .iter()
                        .filter_map(|a| Span::new(a.starts_at, a.ends_at)),
                )
                .collect();
            let gaps = calendar::subtract(&hours, &taken);
            DentistDay {
                dentist_id: dentist,
                name,
                hours: hours.iter().map(Interval::from).collect(),
                time_off,
                appointments,
                gaps: gaps.iter().map(Interval::from).collect(),
            }
        })
        .collect();
    if query.dentist_id.is_some() && days.is_empty() {
        return Err(ApiError::NotFound { what: "dentist" });
    }
    days.sort_by(|a, b| a.name.cmp(&b.name).then(a.dentist_id.cmp(&b.dentist_id)));
    Ok(Agenda {
        date,
        timezone: zone.name().to_owned(),
        dentists: days,
    })
}
