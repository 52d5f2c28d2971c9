//! The audit trail (`audit_events`, migration 18): who changed what, where, when, and from what
//! to what. A change records its event in its own transaction ([`record`]), so neither commits
//! without the other. Events name the fields that changed with their before and after values
//! ([`Changes::between`]); a field holding clinical free text is recorded as changed, never with
//! its words. `GET /admin/audit` reads it (`crate::admin`).

mod read;

pub use read::{AuditActor, AuditEventView, AuditQuery, AuditScope, list};

use crate::auth::Principal;
use crate::http::RequestId;
use crate::ids::{ClinicId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlx::PgConnection;

/// What was done; the part before the dot is the kind of thing it was done to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Action {
    #[serde(rename = "catalog.global_save")]
    CatalogGlobalSave,
    #[serde(rename = "catalog.global_retire")]
    CatalogGlobalRetire,
    #[serde(rename = "clinic.update")]
    ClinicUpdate,
    #[serde(rename = "clinic.create")]
    ClinicCreate,
    #[serde(rename = "clinic.archive")]
    ClinicArchive,
    #[serde(rename = "clinic.restore")]
    ClinicRestore,
    #[serde(rename = "organization.create")]
    OrganizationCreate,
    #[serde(rename = "organization.admin_add")]
    OrganizationAdminAdd,
    #[serde(rename = "membership.create")]
    MembershipCreate,
    #[serde(rename = "membership.update")]
    MembershipUpdate,
    #[serde(rename = "membership.deactivate")]
    MembershipDeactivate,
    #[serde(rename = "patient.create")]
    PatientCreate,
    #[serde(rename = "patient.update")]
    PatientUpdate,
    #[serde(rename = "patient.archive")]
    PatientArchive,
    #[serde(rename = "appointment.override")]
    AppointmentOverride,
    #[serde(rename = "working_hours.replace")]
    WorkingHoursReplace,
    #[serde(rename = "time_off.create")]
    TimeOffCreate,
    #[serde(rename = "time_off.delete")]
    TimeOffDelete,
    #[serde(rename = "chair.create")]
    ChairCreate,
    #[serde(rename = "chair.update")]
    ChairUpdate,
    #[serde(rename = "waiting_list.add")]
    WaitingListAdd,
    #[serde(rename = "waiting_list.remove")]
    WaitingListRemove,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::CatalogGlobalSave,
        Action::CatalogGlobalRetire,
        Action::ClinicUpdate,
        Action::ClinicCreate,
        Action::ClinicArchive,
        Action::ClinicRestore,
        Action::OrganizationCreate,
        Action::OrganizationAdminAdd,
        Action::MembershipCreate,
        Action::MembershipUpdate,
        Action::MembershipDeactivate,
        Action::PatientCreate,
        Action::PatientUpdate,
        Action::PatientArchive,
        Action::AppointmentOverride,
        Action::WorkingHoursReplace,
        Action::TimeOffCreate,
        Action::TimeOffDelete,
        Action::ChairCreate,
        Action::ChairUpdate,
        Action::WaitingListAdd,
        Action::WaitingListRemove,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Action::CatalogGlobalSave => "catalog.global_save",
            Action::CatalogGlobalRetire => "catalog.global_retire",
            Action::ClinicUpdate => "clinic.update",
            Action::ClinicCreate => "clinic.create",
            Action::ClinicArchive => "clinic.archive",
            Action::ClinicRestore => "clinic.restore",
            Action::OrganizationCreate => "organization.create",
            Action::OrganizationAdminAdd => "organization.admin_add",
            Action::MembershipCreate => "membership.create",
            Action::MembershipUpdate => "membership.update",
            Action::MembershipDeactivate => "membership.deactivate",
            Action::PatientCreate => "patient.create",
            Action::PatientUpdate => "patient.update",
            Action::PatientArchive => "patient.archive",
            Action::AppointmentOverride => "appointment.override",
            Action::WorkingHoursReplace => "working_hours.replace",
            Action::TimeOffCreate => "time_off.create",
            Action::TimeOffDelete => "time_off.delete",
            Action::ChairCreate => "chair.create",
            Action::ChairUpdate => "chair.update",
            Action::WaitingListAdd => "waiting_list.add",
            Action::WaitingListRemove => "waiting_list.remove",
        }
    }

    /// The kind of thing acted on: the part before the dot.
    pub fn target_type(&self) -> &'static str {
        self.as_str().split_once('.').map_or("", |(kind, _)| kind)
    }
}

/// Who acts: the signed-in person and the request they made, or Pulso itself.
#[derive(Clone, Debug)]
pub struct Actor {
    pub user: Option<UserId>,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn person(principal: &Principal, request: &RequestId) -> Self {
        Self {
            user: Some(principal.user_id),
            request_id: Some(request.as_str().to_owned()),
        }
    }
}

/// Which fields of a record the trail leaves out (timestamps the change itself moves) or
/// records without their values (clinical free text).
pub struct FieldPolicy {
    pub ignored: &'static [&'static str],
    pub redacted: &'static [&'static str],
}

/// The fields that changed: `{"field": {"before": …, "after": …}}` (only `after` for a
/// creation, only `before` for a removal, `{"changed": true}` for a redacted field).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Changes(Map<String, Value>);

impl Changes {
    /// The top-level fields of two versions of a record (as their JSON objects) that differ.
    pub fn between<T: Serialize>(
        before: Option<&T>,
        after: Option<&T>,
        policy: &FieldPolicy,
    ) -> Self {
        let object = |value: Option<&T>| match value.map(serde_json::to_value) {
            Some(Ok(Value::Object(map))) => map,
            _ => Map::new(),
        };
        let (before, after) = (object(before), object(after));
        let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
        names.sort();
        names.dedup();
        let mut changes = Map::new();
        for name in names {
            if policy.ignored.contains(&name.as_str()) {
                continue;
            }
            let (old, new) = (before.get(name), after.get(name));
            if old == new {
                continue;
            }
            let entry = if policy.redacted.contains(&name.as_str()) {
                json!({ "changed": true })
            } else {
                let mut entry = Map::new();
                if let Some(old) = old {
                    entry.insert("before".into(), old.clone());
                }
                if let Some(new) = new {
                    entry.insert("after".into(), new.clone());
                }
                Value::Object(entry)
            };
            changes.insert(name.clone(), entry);
        }
        Self(changes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds what the record's own fields do not show (a creation's first admin, say).
    pub fn insert(&mut self, field: &str, value: Value) {
        self.0.insert(field.to_owned(), value);
    }
}

/// Records `action` on the target `target_id` of `clinic` (`None`: what all clinics share) in
/// the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    clinic: Option<ClinicId>,
    action: Action,
    target_id: &str,
    changes: &Changes,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events
                (clinic_id, actor_id, action, target_type, target_id, changes, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(clinic)
    .bind(actor.user)
    .bind(action.as_str())
    .bind(action.target_type())
    .bind(target_id)
    .bind(sqlx::types::Json(&changes.0))
    .bind(actor.request_id.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Record {
        name: &'static str,
        phone: Option<&'static str>,
        notes: &'static str,
        updated_at: u32,
    }

    const POLICY: FieldPolicy = FieldPolicy {
        ignored: &["updated_at"],
        redacted: &["notes"],
    };

    #[test]
    fn changes_name_what_differs_and_keep_clinical_text_out() {
        let before = Record {
            name: "Ana",
            phone: None,
            notes: "caries en 36",
            updated_at: 1,
        };
        let after = Record {
            name: "Ana María",
            phone: Some("+34600000000"),
            notes: "endodoncia en 36",
            updated_at: 2,
        };
        let changes = Changes::between(Some(&before), Some(&after), &POLICY);
        assert_eq!(
            serde_json::to_value(&changes).unwrap(),
            json!({
                "name": {"before": "Ana", "after": "Ana María"},
                "phone": {"before": null, "after": "+34600000000"},
                "notes": {"changed": true},
            })
        );
        assert!(!serde_json::to_string(&changes).unwrap().contains("36"));
        assert!(Changes::between(Some(&before), Some(&before), &POLICY).is_empty());
        let created = Changes::between(None, Some(&after), &POLICY);
        assert_eq!(created.0["name"], json!({"after": "Ana María"}));
    }

    #[test]
    fn every_action_names_its_target() {
        for action in Action::ALL {
            let wire = serde_json::to_value(action).unwrap();
            assert_eq!(wire, action.as_str());
            assert!(!action.target_type().is_empty());
        }
    }
}
