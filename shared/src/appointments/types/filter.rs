//! What a calendar list shows: the `GET /appointments` query string, parsed into the
//! [`AppointmentFilter`] the repository runs. A query that cannot be read is malformed (400).

use super::{AppointmentStatus, instant};
use crate::ids::{PatientId, UserId};
use crate::input::InputError;
use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use serde::Deserialize;

/// `GET /appointments` without `to` shows a week; no request may ask for more than a quarter.
pub const DEFAULT_LIST_RANGE: TimeDelta = TimeDelta::days(7);
pub const MAX_LIST_RANGE: TimeDelta = TimeDelta::days(92);

/// `GET /appointments` query string. Times are parsed by [`AppointmentFilter::parse`] so a
/// `+` that arrived unencoded (as a space) is still understood.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListAppointmentsQuery {
    /// Appointments starting at or after this instant (RFC 3339; default 00:00 UTC today).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Appointments starting before this instant (default `from` + 7 days; at most 92 days
    /// after `from`).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Only this dentist's.
    pub dentist_id: Option<UserId>,
    /// Only this patient's.
    pub patient_id: Option<PatientId>,
    /// Comma-separated statuses: `status=scheduled,confirmed`. A repeated `status` key is
    /// rejected.
    #[param(example = "scheduled,confirmed")]
    pub status: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Comma-separated names to embed in each item, so a calendar needs no call per row:
    /// `patient` (the patient's name), `dentist` (the dentist's name).
    #[param(example = "patient,dentist")]
    pub include: Option<String>,
}

/// What `?include=` asks to embed in each listed appointment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Include {
    pub patient: bool,
    pub dentist: bool,
}

impl Include {
    /// `patient`, `dentist` or both, comma-separated; anything else is malformed.
    pub fn parse(raw: Option<&str>) -> Result<Self, InputError> {
        let mut include = Include::default();
        let Some(raw) = raw.map(str::trim).filter(|raw| !raw.is_empty()) else {
            return Ok(include);
        };
        for part in raw.split(',') {
            match part.trim() {
                "patient" => include.patient = true,
                "dentist" => include.dentist = true,
                _ => {
                    return Err(InputError::malformed(
                        "include",
                        "include takes patient, dentist or both, comma-separated.",
                    ));
                }
            }
        }
        Ok(include)
    }
}

/// Which appointments a list shows: those *starting* in `[from, to)`, optionally of one
/// dentist, one patient and some statuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppointmentFilter {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub dentist_id: Option<UserId>,
    pub patient_id: Option<PatientId>,
    /// `None` shows every status.
    pub statuses: Option<Vec<AppointmentStatus>>,
}

impl AppointmentFilter {
    /// Without `from`, the list starts at 00:00 UTC today; without `to`, it spans a week.
    pub fn parse(query: &ListAppointmentsQuery, now: DateTime<Utc>) -> Result<Self, InputError> {
        let from = match query.from.as_deref() {
            Some(raw) => parse_query_instant("from", raw)?,
            None => now.date_naive().and_time(NaiveTime::MIN).and_utc(),
        };
        let to = match query.to.as_deref() {
            Some(raw) => parse_query_instant("to", raw)?,
            None => from
                .checked_add_signed(DEFAULT_LIST_RANGE)
                .ok_or_else(|| InputError::malformed("from", "from is too far in the future."))?,
        };
        if to <= from {
            return Err(InputError::malformed("to", "to must be after from."));
        }
        if to - from > MAX_LIST_RANGE {
            return Err(InputError::malformed(
                "to",
                "The range from..to must be at most 92 days.",
            ));
        }
        let statuses = query
            .status
            .as_deref()
            .map(str::trim)
            .filter(|raw| !raw.is_empty())
            .map(parse_statuses)
            .transpose()?;
        Ok(Self {
            from,
            to,
            dentist_id: query.dentist_id,
            patient_id: query.patient_id,
            statuses,
        })
    }
}

/// An RFC 3339 instant with an offset. A query string decodes an unencoded `+` to a space,
/// so `10:00:00 02:00` is read as `10:00:00+02:00`.
fn parse_query_instant(field: &str, raw: &str) -> Result<DateTime<Utc>, InputError> {
    let raw = raw.trim();
    DateTime::parse_from_rfc3339(raw)
        .or_else(|error| match raw.rsplit_once(' ') {
            Some((head, offset)) if offset.len() == 5 && offset.as_bytes()[2] == b':' => {
                DateTime::parse_from_rfc3339(&format!("{head}+{offset}"))
            }
            _ => Err(error),
        })
        .map(|at| instant(at.with_timezone(&Utc)))
        .map_err(|_| {
            InputError::malformed(
                field,
                format!(
                    "{field} must be an RFC 3339 time with an offset, like \
                     2026-05-04T09:00:00Z or 2026-05-04T09:00:00%2B02:00."
                ),
            )
        })
}

fn parse_statuses(raw: &str) -> Result<Vec<AppointmentStatus>, InputError> {
    let mut statuses = Vec::new();
    for part in raw.split(',') {
        let status: AppointmentStatus = part.trim().parse().map_err(|_| {
            InputError::malformed(
                "status",
                "status must be one or more of scheduled, confirmed, completed, cancelled, \
                 no_show, separated by commas.",
            )
        })?;
        if !statuses.contains(&status) {
            statuses.push(status);
        }
    }
    Ok(statuses)
}

#[cfg(test)]
mod tests {
    use super::super::at;
    use super::*;
    use AppointmentStatus::{Confirmed, Scheduled};

    #[test]
    fn include_names_patient_dentist_or_both() {
        assert_eq!(Include::parse(None).ok(), Some(Include::default()));
        assert_eq!(Include::parse(Some(" ")).ok(), Some(Include::default()));
        let both = Include {
            patient: true,
            dentist: true,
        };
        assert_eq!(Include::parse(Some("patient,dentist")).ok(), Some(both));
        assert_eq!(Include::parse(Some("dentist, patient")).ok(), Some(both));
        for bad in ["patients", "patient,", "notes", "patient;dentist"] {
            assert!(Include::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_filter_defaults_and_limits() {
        let now = at("2030-05-06T15:20:00Z");
        let filter = AppointmentFilter::parse(&ListAppointmentsQuery::default(), now).unwrap();
        assert_eq!(filter.from, at("2030-05-06T00:00:00Z"));
        assert_eq!(filter.to, at("2030-05-13T00:00:00Z"));
        assert_eq!(filter.statuses, None);

        let query = |from: &str, to: Option<&str>, status: Option<&str>| ListAppointmentsQuery {
            from: Some(from.into()),
            to: to.map(Into::into),
            status: status.map(Into::into),
            ..Default::default()
        };
        // An unencoded `+` arrives as a space.
        let filter =
            AppointmentFilter::parse(&query("2030-05-06T09:00:00 02:00", None, None), now).unwrap();
        assert_eq!(filter.from, at("2030-05-06T07:00:00Z"));
        let filter = AppointmentFilter::parse(
            &query(
                "2030-05-06T00:00:00Z",
                Some("2030-08-06T00:00:00Z"),
                Some("confirmed, scheduled,confirmed"),
            ),
            now,
        )
        .unwrap();
        assert_eq!(filter.statuses, Some(vec![Confirmed, Scheduled]));

        let field = |q: ListAppointmentsQuery| match AppointmentFilter::parse(&q, now) {
            Err(InputError::Malformed { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        };
        assert_eq!(
            field(query("2030-05-06", None, None)).as_deref(),
            Some("from")
        );
        assert_eq!(
            field(query("2030-05-06T10:00:00", None, None)).as_deref(),
            Some("from")
        );
        assert_eq!(
            field(query(
                "2030-05-06T00:00:00Z",
                Some("2030-05-06T00:00:00Z"),
                None
            ))
            .as_deref(),
            Some("to")
        );
        assert_eq!(
            field(query(
                "2030-05-06T00:00:00Z",
                Some("2030-08-06T00:00:01Z"),
                None
            ))
            .as_deref(),
            Some("to")
        );
        assert_eq!(
            field(query(
                "2030-05-06T00:00:00Z",
                None,
                Some("scheduled,no-show")
            ))
            .as_deref(),
            Some("status")
        );
        assert_eq!(
            field(query("2030-05-06T00:00:00Z", None, Some("scheduled,"))).as_deref(),
            Some("status")
        );
    }
}
