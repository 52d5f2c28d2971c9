//! What each role may call: the `operationId`s whose `x-roles` include it, read from the
//! committed OpenAPI document. `x-roles` is written from the same constants the handlers check
//! (`crate::contract`), and a test fails when the committed copy drifts from the code, so what
//! `GET /me` tells the frontend to show and what the API answers with 403 cannot disagree.
//!
//! The document is compiled in and read once per instance, on the first `GET /me`.

use crate::auth::Role;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The operations `role` may call, sorted.
pub fn operations_for(role: Role) -> &'static [String] {
    static TABLE: OnceLock<HashMap<Role, Vec<String>>> = OnceLock::new();
    TABLE
        .get_or_init(|| table(DOCUMENT))
        .get(&role)
        .map_or(&[], Vec::as_slice)
}

fn table(document: &str) -> HashMap<Role, Vec<String>> {
    // The committed document is the code's own output: a test parses the same text.
    let document: Value = serde_json::from_str(document).unwrap_or_default();
    let mut table: HashMap<Role, Vec<String>> = HashMap::new();
    let paths = document["paths"].as_object().into_iter().flatten();
    for operation in paths.flat_map(|(_, item)| item.as_object().into_iter().flatten()) {
        let (Some(id), Some(roles)) = (
            operation.1["operationId"].as_str(),
            operation.1["x-roles"].as_array(),
        ) else {
            continue;
        };
        for role in roles {
            if let Ok(role) = serde_json::from_value::<Role>(role.clone()) {
                table.entry(role).or_default().push(id.to_owned());
            }
        }
    }
    for operations in table.values_mut() {
        operations.sort();
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_may_call_something_and_only_admins_may_call_everything_they_do() {
        let table = table(DOCUMENT);
        for role in Role::STAFF {
            assert!(
                table
                    .get(role)
                    .is_some_and(|ops| ops.contains(&"getMe".to_owned())),
                "{role:?} may read /me"
            );
        }
        let admin = &table[&Role::Admin];
        let receptionist = &table[&Role::Receptionist];
        assert!(admin.contains(&"getDashboard".to_owned()));
        assert!(!receptionist.contains(&"getDashboard".to_owned()));
        assert!(receptionist.contains(&"createAppointment".to_owned()));
    }
}
