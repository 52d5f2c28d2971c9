//! Typed identifiers: a `PatientId` can never be passed where a `ClinicId` is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// The tenant: one of the caller's memberships, chosen by the `Pulso-Clinic` header (or
    /// defaulted, `shared::access`), never taken from a URL or a body.
    ClinicId
);
id_type!(
    /// A person: staff of one or more clinics through their memberships.
    UserId
);
id_type!(
    /// A chain of clinics.
    OrganizationId
);
id_type!(PatientId);
id_type!(AppointmentId);
id_type!(XrayId);
id_type!(
    /// One weekly working interval of a dentist (`shared::schedule`).
    WorkingHoursId
);
id_type!(
    /// A dentist's or the whole clinic's time away (`shared::schedule`).
    TimeOffId
);
id_type!(
    /// A treatment room (cubículo) of a clinic.
    ChairId
);
id_type!(
    /// A patient waiting for time to free up (`shared::schedule::waiting_list`).
    WaitingListEntryId
);
id_type!(ReportId);
id_type!(
    /// A background job (a row of `jobs`; the same id travels through the Redis queue).
    JobId
);
