//! The one place Redis keys are spelled: `{env}:{area}:{clinic}:{name}:v{n}`.
//!
//! The prefix (`env`) separates deployments sharing a Redis and gives every test its own
//! namespace. Every tenant key carries the clinic id, so one clinic can never read another's value.
//! The clinic id is a hash tag (`{…}`): in cluster mode (ElastiCache Serverless) a clinic's keys
//! share a slot, so a value, its lease and the clinic's other keys can move together in one
//! Lua script.

use crate::ids::{ClinicId, PatientId};

/// Bumped when the cached patient profile's shape changes: old values are then never read.
const PATIENT_PROFILE_FORMAT: u32 = 1;

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn patient_profile(&self, clinic: ClinicId, patient: PatientId) -> String {
        format!(
            "{}:patients:{{{clinic}}}:profile:{patient}:v{PATIENT_PROFILE_FORMAT}",
            self.prefix
        )
    }

    /// The fill lease of a cached value: same hash tag, so the same slot.
    pub fn lease(value_key: &str) -> String {
        format!("{value_key}:lease")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn patient_key_carries_env_clinic_and_format_version() {
        let clinic = ClinicId(Uuid::nil());
        let patient = PatientId(Uuid::max());
        assert_eq!(
            Keys::new("dev").patient_profile(clinic, patient),
            format!(
                "dev:patients:{{{}}}:profile:{}:v1",
                Uuid::nil(),
                Uuid::max()
            )
        );
    }
}
