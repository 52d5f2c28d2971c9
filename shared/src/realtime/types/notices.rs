//! What a notification says: its kind and the body that kind carries. Each kind has exactly one
//! body type, so a producer cannot store a body its kind's readers do not expect, and the
//! WebSocket API's AsyncAPI document (`shared::contract`) describes every kind from these types.
//!
//! Bodies hold ids, times and links, never names or clinical text: a push travels through API
//! Gateway and sits in a browser's memory.

use crate::ids::{AppointmentId, JobId, PatientId, ReportId, UserId, WaitingListEntryId, XrayId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};

/// What a notification is about, stored by name in `notifications.kind` (whose check is
/// `^[a-z][a-z0-9_.]{1,63}$`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationKind {
    XrayAnalysed,
    ReportReady,
    AppointmentReminder,
    PossibleNoShow,
    Announcement,
    WaitingListMatch,
}

impl NotificationKind {
    /// Every kind, in the order the AsyncAPI document lists them.
    pub const ALL: [NotificationKind; 6] = [
        NotificationKind::XrayAnalysed,
        NotificationKind::ReportReady,
        NotificationKind::AppointmentReminder,
        NotificationKind::PossibleNoShow,
        NotificationKind::Announcement,
        NotificationKind::WaitingListMatch,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            NotificationKind::XrayAnalysed => "xray.analysed",
            NotificationKind::ReportReady => "report.ready",
            NotificationKind::AppointmentReminder => "appointment.reminder",
            NotificationKind::PossibleNoShow => "appointment.possible_no_show",
            NotificationKind::Announcement => "announcement",
            NotificationKind::WaitingListMatch => "waiting_list.match",
        }
    }

    /// When a notification of this kind is sent, and to whom.
    pub const fn description(self) -> &'static str {
        match self {
            NotificationKind::XrayAnalysed => {
                "An X-ray's analysis finished: to whoever uploaded it (unless a receptionist) \
                 and to the clinic's receptionists."
            }
            NotificationKind::ReportReady => {
                "An insurance report's PDF is ready: to whoever asked for it (unless a \
                 receptionist) and to the clinic's receptionists."
            }
            NotificationKind::AppointmentReminder => {
                "An appointment still scheduled or confirmed starts in 24 hours, or in 1 hour: \
                 to the clinic's receptionists."
            }
            NotificationKind::PossibleNoShow => {
                "An appointment started 15 minutes ago and is still scheduled or confirmed: to \
                 the clinic's receptionists."
            }
            NotificationKind::Announcement => {
                "A clinic admin's announcement to their clinic, or a platform operator's to \
                 every clinic."
            }
            NotificationKind::WaitingListMatch => {
                "A cancellation or a reschedule freed time that fits waiting-list entries (the \
                 dentist they want or any, inside their window, long enough): to the clinic's \
                 receptionists, with the entries, first come first served. Nothing is booked."
            }
        }
    }

    /// The name and schema of this kind's body, and the schemas that one refers to.
    pub fn body_schema(self) -> (Cow<'static, str>, RefOr<Schema>, Vec<NamedSchema>) {
        fn of<T: ToSchema>() -> (Cow<'static, str>, RefOr<Schema>, Vec<NamedSchema>) {
            let mut referenced = Vec::new();
            T::schemas(&mut referenced);
            (T::name(), T::schema(), referenced)
        }
        match self {
            NotificationKind::XrayAnalysed => of::<XrayAnalysed>(),
            NotificationKind::ReportReady => of::<ReportReady>(),
            NotificationKind::AppointmentReminder | NotificationKind::PossibleNoShow => {
                of::<AppointmentNotice>()
            }
            NotificationKind::Announcement => of::<AnnouncementNotice>(),
            NotificationKind::WaitingListMatch => of::<WaitingListMatch>(),
        }
    }
}

/// A schema with the name it is referred to by.
pub type NamedSchema = (String, RefOr<Schema>);

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notification's kind with its body.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    XrayAnalysed(XrayAnalysed),
    ReportReady(ReportReady),
    AppointmentReminder(AppointmentNotice),
    PossibleNoShow(AppointmentNotice),
    Announcement(AnnouncementNotice),
    WaitingListMatch(WaitingListMatch),
}

impl Notice {
    /// An announcement without a link.
    pub fn announcement(message: impl Into<String>) -> Self {
        Notice::Announcement(AnnouncementNotice {
            message: message.into(),
            link: None,
        })
    }

    pub fn kind(&self) -> NotificationKind {
        match self {
            Notice::XrayAnalysed(_) => NotificationKind::XrayAnalysed,
            Notice::ReportReady(_) => NotificationKind::ReportReady,
            Notice::AppointmentReminder(_) => NotificationKind::AppointmentReminder,
            Notice::PossibleNoShow(_) => NotificationKind::PossibleNoShow,
            Notice::Announcement(_) => NotificationKind::Announcement,
            Notice::WaitingListMatch(_) => NotificationKind::WaitingListMatch,
        }
    }

    /// The body as stored and pushed: always a JSON object.
    pub fn body(&self) -> serde_json::Value {
        let body = match self {
            Notice::XrayAnalysed(body) => serde_json::to_value(body),
            Notice::ReportReady(body) => serde_json::to_value(body),
            Notice::AppointmentReminder(body) | Notice::PossibleNoShow(body) => {
                serde_json::to_value(body)
            }
            Notice::Announcement(body) => serde_json::to_value(body),
            Notice::WaitingListMatch(body) => serde_json::to_value(body),
        };
        // Plain structs of ids, times and strings always serialize.
        body.unwrap_or_else(|_| serde_json::json!({}))
    }
}

/// The body of `xray.analysed`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct XrayAnalysed {
    /// `/xrays/{xray_id}`: the X-ray with its quality report.
    pub link: String,
    pub xray_id: XrayId,
    /// The analysis job (`GET /jobs/{id}`).
    pub job_id: JobId,
}

impl XrayAnalysed {
    pub fn new(xray_id: XrayId, job_id: JobId) -> Self {
        Self {
            link: format!("/xrays/{xray_id}"),
            xray_id,
            job_id,
        }
    }
}

/// The body of `report.ready`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct ReportReady {
    /// `/reports/{report_id}`: the report, with the link to its PDF.
    pub link: String,
    pub report_id: ReportId,
    /// The generation job (`GET /jobs/{id}`).
    pub job_id: JobId,
}

impl ReportReady {
    pub fn new(report_id: ReportId, job_id: JobId) -> Self {
        Self {
            link: format!("/reports/{report_id}"),
            report_id,
            job_id,
        }
    }
}

/// The body of `appointment.reminder` and `appointment.possible_no_show`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AppointmentNotice {
    /// `/appointments/{appointment_id}`.
    pub link: String,
    pub appointment_id: AppointmentId,
    pub patient_id: PatientId,
    pub dentist_id: UserId,
    pub starts_at: DateTime<Utc>,
}

impl AppointmentNotice {
    pub fn new(
        appointment_id: AppointmentId,
        patient_id: PatientId,
        dentist_id: UserId,
        starts_at: DateTime<Utc>,
    ) -> Self {
        Self {
            link: format!("/appointments/{appointment_id}"),
            appointment_id,
            patient_id,
            dentist_id,
            starts_at,
        }
    }
}

/// The body of `announcement`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct AnnouncementNotice {
    pub message: String,
    /// A path of the app (`/…`) the announcement points to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The body of `waiting_list.match`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WaitingListMatch {
    /// `/waiting-list?dentist_id={dentist_id}`: the entries, for reception to call.
    pub link: String,
    /// Whose time was freed.
    pub dentist_id: UserId,
    /// The free stretch now there, from the next minute on.
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The entries it fits, first come first served.
    pub entries: Vec<WaitingListMatchEntry>,
}

/// An entry a freed stretch fits.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct WaitingListMatchEntry {
    pub entry_id: WaitingListEntryId,
    pub patient_id: PatientId,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails to compile when a kind is added without a place here, and fails when that place
    /// is not in `ALL`.
    #[test]
    fn all_lists_every_kind_once() {
        for (index, kind) in NotificationKind::ALL.into_iter().enumerate() {
            let expected = match kind {
                NotificationKind::XrayAnalysed => 0,
                NotificationKind::ReportReady => 1,
                NotificationKind::AppointmentReminder => 2,
                NotificationKind::PossibleNoShow => 3,
                NotificationKind::Announcement => 4,
                NotificationKind::WaitingListMatch => 5,
            };
            assert_eq!(index, expected, "{kind}");
        }
    }

    /// What `notifications.kind`'s check accepts: `^[a-z][a-z0-9_.]{1,63}$`.
    #[test]
    fn every_name_fits_the_column() {
        for kind in NotificationKind::ALL {
            let name = kind.as_str();
            let mut chars = name.chars();
            assert!(
                chars.next().is_some_and(|c| c.is_ascii_lowercase()),
                "{name}"
            );
            assert!((2..=64).contains(&name.len()), "{name}");
            assert!(
                chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.".contains(c)),
                "{name}"
            );
        }
    }

    #[test]
    fn a_body_is_the_object_its_schema_describes() {
        let xray = XrayId::new_random();
        let job = JobId::new_random();
        let notice = Notice::XrayAnalysed(XrayAnalysed::new(xray, job));
        let body = notice.body();
        assert_eq!(body["link"], format!("/xrays/{xray}"));
        assert_eq!(body["xray_id"], xray.to_string());
        let (name, schema, _) = notice.kind().body_schema();
        assert_eq!(name, "XrayAnalysed");
        let schema = serde_json::to_value(schema).unwrap_or_default();
        let mut described: Vec<&String> = schema["properties"]
            .as_object()
            .map(|properties| properties.keys().collect())
            .unwrap_or_default();
        let mut sent: Vec<&String> = body
            .as_object()
            .map(|b| b.keys().collect())
            .unwrap_or_default();
        described.sort();
        sent.sort();
        assert_eq!(described, sent);
        assert_eq!(
            Notice::announcement("hoy").body(),
            serde_json::json!({"message": "hoy"})
        );
    }
}
