//! Notices for the reception desk (role receptionist of the appointment's clinic): appointment
//! reminders 24 hours and 1 hour before the start, and possible no-shows 15 minutes after the
//! start of an appointment still scheduled or confirmed (nobody marked it completed, cancelled or
//! no-show).
//!
//! Each notice is due inside a window before its moment (an hour for the 24-hour reminder, half an
//! hour for the 1-hour one, two hours for the no-show), so a tick that was missed or came late is
//! made up by the next one, and a booking made inside the window still gets its reminder. Each is
//! stored once: its dedupe key (`reminder-24h:<appointment>`, `reminder-1h:…`, `no-show:…`) is
//! unique per clinic, so a second tick, a scheduler run twice, or two at once, send nothing new.
//! The query skips appointments already notified; the unique index is what guarantees it.
//!
//! Notices carry ids, the start time and a link, never the patient's name or the visit's reason.

use super::clinics::for_each_clinic;
use crate::auth::Role;
use crate::db::{self, DbError};
use crate::ids::{AppointmentId, ClinicId, PatientId, UserId};
use crate::realtime::{self, AppointmentNotice, Audience, NewNotification, Notice};
use crate::state::AppState;
use crate::telemetry::ErrorChain;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use tokio::time::Instant;

/// Clinics worked on at once.
const CONCURRENCY: usize = 4;
/// Most notices of one rule for one clinic per tick; the rest come on the next tick.
const BATCH: i64 = 200;

/// One kind of notice: due for appointments starting in `(at + from, at + to]`.
#[derive(Clone, Copy, Debug)]
struct Rule {
    dedupe_prefix: &'static str,
    /// The notice of one due appointment.
    notice: fn(AppointmentNotice) -> Notice,
    title: &'static str,
    from_seconds: i64,
    to_seconds: i64,
}

const RULES: [Rule; 3] = [
    Rule {
        dedupe_prefix: "reminder-24h",
        notice: Notice::AppointmentReminder,
        title: "Appointment in 24 hours",
        from_seconds: 23 * 3600,
        to_seconds: 24 * 3600,
    },
    Rule {
        dedupe_prefix: "reminder-1h",
        notice: Notice::AppointmentReminder,
        title: "Appointment in 1 hour",
        from_seconds: 30 * 60,
        to_seconds: 3600,
    },
    Rule {
        dedupe_prefix: "no-show",
        notice: Notice::PossibleNoShow,
        title: "Possible no-show",
        from_seconds: -(2 * 3600 + 15 * 60),
        to_seconds: -15 * 60,
    },
];

/// What the reminders task did on one tick.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NoticeReport {
    pub clinics: usize,
    /// Notices stored (and pushed) on this tick.
    pub sent: usize,
    /// Found due but already stored (a concurrent run got there first).
    pub already_sent: usize,
    /// Clinics whose appointments could not be read, or notices that could not be stored.
    pub failed: usize,
    /// Clinics not visited because the deadline came first.
    pub out_of_time: usize,
}

#[derive(Debug, sqlx::FromRow)]
struct DueAppointment {
    id: AppointmentId,
    patient_id: PatientId,
    dentist_id: UserId,
    starts_at: DateTime<Utc>,
}

/// Sends the notices due at `at` for every clinic in `clinics`. No clinic is started after
/// `stop_at`.
pub async fn send_due(
    state: &AppState,
    clinics: &[ClinicId],
    at: DateTime<Utc>,
    stop_at: Instant,
) -> NoticeReport {
    let outcomes = for_each_clinic(clinics, CONCURRENCY, stop_at, |clinic| {
        send_for_clinic(state, clinic, at)
    })
    .await;
    let mut report = NoticeReport {
        clinics: clinics.len(),
        ..NoticeReport::default()
    };
    for outcome in outcomes {
        match outcome {
            Some(done) => {
                report.sent += done.sent;
                report.already_sent += done.already_sent;
                report.failed += done.failed;
            }
            None => report.out_of_time += 1,
        }
    }
    report
}

async fn send_for_clinic(state: &AppState, clinic: ClinicId, at: DateTime<Utc>) -> NoticeReport {
    let mut report = NoticeReport::default();
    for rule in RULES {
        let due = match due_appointments(state, clinic, rule, at).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(clinic_id = %clinic, rule = rule.dedupe_prefix, error = %ErrorChain(&error), "due appointments could not be read");
                report.failed += 1;
                continue;
            }
        };
        for appointment in due {
            let body = AppointmentNotice::new(
                appointment.id,
                appointment.patient_id,
                appointment.dentist_id,
                appointment.starts_at,
            );
            let notice = NewNotification::new(
                Audience::Role {
                    clinic,
                    role: Role::Receptionist,
                },
                rule.title,
                (rule.notice)(body),
            )
            .with_dedupe_key(format!("{}:{}", rule.dedupe_prefix, appointment.id));
            match realtime::notify(state, notice).await {
                Ok(delivery) if delivery.created => report.sent += 1,
                Ok(_) => report.already_sent += 1,
                Err(error) => {
                    tracing::warn!(clinic_id = %clinic, appointment_id = %appointment.id, error = %ErrorChain(&error), "an appointment notice could not be stored");
                    report.failed += 1;
                }
            }
        }
    }
    report
}

/// Appointments of `clinic`, still scheduled or confirmed, starting inside the rule's window and
/// not notified by this rule yet, in start order.
async fn due_appointments(
    state: &AppState,
    clinic: ClinicId,
    rule: Rule,
    at: DateTime<Utc>,
) -> Result<Vec<DueAppointment>, DbError> {
    let after = at + TimeDelta::seconds(rule.from_seconds);
    let until = at + TimeDelta::seconds(rule.to_seconds);
    let mut tx = db::begin_tenant(&state.db, clinic).await?;
    let due = sqlx::query_as(
        "SELECT a.id, a.patient_id, a.dentist_id, a.starts_at FROM appointments a \
         WHERE a.clinic_id = $1 AND a.status IN ('scheduled', 'confirmed') \
           AND a.starts_at > $2 AND a.starts_at <= $3 \
           AND NOT EXISTS (SELECT 1 FROM notifications n \
                           WHERE n.clinic_id = $1 AND n.dedupe_key = $4 || ':' || a.id::text) \
         ORDER BY a.starts_at, a.id LIMIT $5",
    )
    .bind(clinic)
    .bind(after)
    .bind(until)
    .bind(rule.dedupe_prefix)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_do_not_overlap_and_come_in_order() {
        for rule in RULES {
            assert!(
                rule.from_seconds < rule.to_seconds,
                "{}",
                rule.dedupe_prefix
            );
        }
        // 24 h before, 1 h before, 15 min after: distinct moments, distinct keys.
        assert_eq!(RULES[0].to_seconds, 86_400);
        assert_eq!(RULES[1].to_seconds, 3_600);
        assert_eq!(RULES[2].to_seconds, -900);
        let prefixes: std::collections::HashSet<_> =
            RULES.iter().map(|rule| rule.dedupe_prefix).collect();
        assert_eq!(prefixes.len(), RULES.len());
    }
}
