//! Property tests over every request parser (test only): whatever a client sends — any JSON,
//! any field with any value, any query string, any path segment — the parser answers a value
//! or a 400/422 that names its field, never panics, and answers the same input the same way.
//!
//! Bodies are generated around each request's own field names (so the domain checks behind
//! serde are reached, not only serde's refusals), with values drawn from everything JSON can
//! carry: arbitrary Unicode (NUL, bidi controls, astral planes), huge and negative numbers,
//! near-miss dates and times, uuids, nested arrays and objects.

use crate::admin::{Announcement, AnnouncementBody, InvalidateBody, InvalidateRequest};
use crate::appointments::{
    Action, AppointmentChanges, AppointmentFilter, CreateAppointmentRequest, ListAppointmentsQuery,
    NewAppointment, UpdateAppointmentRequest,
};
use crate::catalogs::{CatalogKind, ItemChanges, PutItemRequest};
use crate::http::{ApiError, parse_json};
use crate::ids::PatientId;
use crate::pagination::PageRequest;
use crate::patients::{
    CreatePatientRequest, ListPatientsQuery, NewPatient, PatientChanges, PatientSearch,
    UpdatePatientRequest,
};
use crate::reports::{InsuranceReportParams, InsuranceReportRequest};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt::Debug;

/// What a parser answered, reduced to what a client sees: the value, or status and field.
type Outcome = Result<String, (u16, Option<String>)>;

fn refusal(error: impl Into<ApiError>) -> (u16, Option<String>) {
    let problem = error.into().problem();
    (problem.status, problem.field)
}

/// A JSON body through the strict extractor's parse, then the request's own conversion.
fn body_outcome<R, D, E>(body: &[u8], convert: impl Fn(R) -> Result<D, E>) -> Outcome
where
    R: DeserializeOwned,
    D: Debug,
    E: Into<ApiError>,
{
    let request: R = parse_json(body).map_err(refusal)?;
    convert(request)
        .map(|parsed| format!("{parsed:?}"))
        .map_err(refusal)
}

/// A refusal is a 400 or a 422, and a 422 always names its field.
fn assert_well_formed(outcome: &Outcome) -> Result<(), TestCaseError> {
    if let Err((status, field)) = outcome {
        prop_assert!(*status == 400 || *status == 422, "refused with {status}");
        if *status == 422 {
            prop_assert!(
                field.as_deref().is_some_and(|field| !field.is_empty()),
                "a 422 without a field"
            );
        }
    }
    Ok(())
}

/// Runs `parse` twice on the same input: well formed, and the same answer both times.
fn check(parse: impl Fn() -> Outcome) -> Result<(), TestCaseError> {
    let first = parse();
    assert_well_formed(&first)?;
    prop_assert_eq!(first, parse());
    Ok(())
}

/// Text that reaches the edge cases: anything, or text close to what a field expects.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \\PC]{0,40}",
        "[\u{0}\u{7}\u{202E}\u{2066}\u{200B}\u{FEFF}a-zA-Z ]{0,12}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9+-]{1,7}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?",
        "[+0-9 ().-]{0,20}",
        "[a-z0-9.]{1,10}@[a-z0-9.-]{0,10}",
        "[A-Z0-9._-]{0,40}",
        "/[ -~]{0,30}",
        Just(uuid::Uuid::new_v4().to_string()),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-2000i64..2000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A body made from `valid` (a request that parses) with some fields replaced by any value,
/// removed, or joined by an unknown one; at times not an object at all, or not JSON. Starting
/// from a valid request lets a single bad field reach the check behind it.
fn body(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    let Value::Object(valid) = valid else {
        panic!("a request body is an object");
    };
    let names: Vec<String> = valid
        .keys()
        .cloned()
        .chain(["unknown".to_string(), "clinic_id".to_string()])
        .collect();
    let change = (
        prop::sample::select(names),
        prop::option::weighted(0.9, value()),
    );
    let object = prop::collection::vec(change, 0..4).prop_map(move |changes| {
        let mut object = valid.clone();
        for (name, value) in changes {
            match value {
                Some(value) => object.insert(name, value),
                None => object.remove(&name),
            };
        }
        serde_json::to_vec(&Value::Object(object)).expect("a JSON value serializes")
    });
    prop_oneof![
        8 => object,
        1 => value().prop_map(|value| serde_json::to_vec(&value).expect("serializes")),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A query string over `keys` with any values, encoded as a browser would.
fn query(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    let pairs = prop::collection::vec((prop::sample::select(keys.to_vec()), text()), 0..5);
    prop_oneof![
        4 => pairs.prop_map(|pairs| {
            let mut encoded = form_urlencoded::Serializer::new(String::new());
            for (key, value) in pairs {
                encoded.append_pair(key, &value);
            }
            encoded.finish()
        }),
        1 => "[ -~]{0,40}",
    ]
}

fn query_outcome<Q: DeserializeOwned, D: Debug>(
    raw: &str,
    convert: impl Fn(&Q) -> Result<D, crate::input::InputError>,
) -> Outcome {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
    let query: Q = serde::Deserialize::deserialize(deserializer)
        .map_err(|_| (400, Some("query".to_string())))?;
    convert(&query)
        .map(|parsed| format!("{parsed:?}"))
        .map_err(refusal)
}

fn patient() -> Value {
    serde_json::json!({
        "first_name": "María José", "last_name": "Núñez", "phone": "+34 600 123 456",
        "email": "maria@example.es", "birth_date": "1980-02-29", "national_id": "12345678Z",
        "notes": "Alergia a la penicilina.",
    })
}

fn appointment() -> Value {
    let starts_at = (Utc::now() + chrono::TimeDelta::days(3)).to_rfc3339();
    serde_json::json!({
        "patient_id": uuid::Uuid::new_v4(), "dentist_id": uuid::Uuid::new_v4(),
        "starts_at": starts_at, "duration_minutes": 30, "reason": "Revisión",
        "procedure_code": "REV",
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn patient_bodies(body in body(patient())) {
        check(|| body_outcome(&body, |r: CreatePatientRequest| NewPatient::try_from(r)))?;
        check(|| body_outcome(&body, |r: UpdatePatientRequest| PatientChanges::try_from(r)))?;
    }

    #[test]
    fn appointment_bodies(body in body(appointment())) {
        check(|| body_outcome(&body, |r: CreateAppointmentRequest| NewAppointment::try_from(r)))?;
        check(|| body_outcome(&body, |r: UpdateAppointmentRequest| AppointmentChanges::try_from(r)))?;
    }

    #[test]
    fn catalog_item_bodies(
        body in body(serde_json::json!({"name": "Limpieza", "default_minutes": 45, "price_cents": 5500, "active": true}))
    ) {
        for kind in [CatalogKind::Procedure, CatalogKind::Insurer] {
            check(|| body_outcome(&body, |request: PutItemRequest| ItemChanges::parse(kind, request)))?;
        }
    }

    #[test]
    fn report_bodies(
        body in body(serde_json::json!({"patient_id": uuid::Uuid::new_v4(), "from": "2025-04-01", "to": "2025-04-30", "insurer": "SANITAS"}))
    ) {
        check(|| body_outcome(&body, |r: InsuranceReportRequest| InsuranceReportParams::try_from(r)))?;
    }

    #[test]
    fn admin_bodies(
        announcement in body(serde_json::json!({"title": "Cerrado", "message": "Festivo.", "link": "/calendar", "everyone": false})),
        invalidation in body(serde_json::json!({"scope": "patient", "patient_id": uuid::Uuid::new_v4()})),
    ) {
        check(|| body_outcome(&announcement, |body: AnnouncementBody| Announcement::try_from(body)))?;
        check(|| body_outcome(&invalidation, |body: InvalidateBody| InvalidateRequest::try_from(body)))?;
    }

    #[test]
    fn list_queries(
        appointments in query(&["from", "to", "dentist_id", "patient_id", "status", "limit", "cursor"]),
        patients in query(&["search", "limit", "cursor", "include_archived"]),
    ) {
        let now = Utc::now();
        check(|| query_outcome(&appointments, |q: &ListAppointmentsQuery| {
            AppointmentFilter::parse(q, now)?;
            PageRequest::<(DateTime<Utc>, PatientId)>::new(q.limit, q.cursor.as_deref())
                .map(|page| page.after)
        }))?;
        check(|| query_outcome(&patients, |q: &ListPatientsQuery| {
            PatientSearch::parse(q.search.as_deref())?;
            PageRequest::<(String, PatientId)>::new(q.limit, q.cursor.as_deref())
                .map(|page| page.after)
        }))?;
    }

    #[test]
    fn path_segments(segment in text()) {
        // Unknown segments are the route's 404; a known one parses the same each time.
        prop_assert_eq!(Action::from_path(&segment), Action::from_path(&segment));
        prop_assert_eq!(CatalogKind::from_path(&segment), CatalogKind::from_path(&segment));
    }
}
