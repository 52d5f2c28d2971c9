//! Where an appointment is in its life: its status, the actions that move it, and the one
//! table of the transitions allowed.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where an appointment is in its life, as the `appointment_status` PostgreSQL enum.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "appointment_status", rename_all = "snake_case")]
pub enum AppointmentStatus {
    Scheduled,
    Confirmed,
    Completed,
    Cancelled,
    NoShow,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 5] = [
        AppointmentStatus::Scheduled,
        AppointmentStatus::Confirmed,
        AppointmentStatus::Completed,
        AppointmentStatus::Cancelled,
        AppointmentStatus::NoShow,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AppointmentStatus::Scheduled => "scheduled",
            AppointmentStatus::Confirmed => "confirmed",
            AppointmentStatus::Completed => "completed",
            AppointmentStatus::Cancelled => "cancelled",
            AppointmentStatus::NoShow => "no_show",
        }
    }

    /// Scheduled and confirmed appointments are still ahead of the clinic: they can be edited
    /// and closed. The other three are history.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            AppointmentStatus::Scheduled | AppointmentStatus::Confirmed
        )
    }

    /// How the status reads in a sentence: "an appointment that is …".
    fn in_words(&self) -> &'static str {
        match self {
            AppointmentStatus::NoShow => "marked as a no-show",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown appointment status")]
pub struct UnknownStatus;

impl FromStr for AppointmentStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AppointmentStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

/// A status change asked for by `POST /appointments/{id}/{action}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "kebab-case")]
pub enum Action {
    Confirm,
    Cancel,
    Complete,
    NoShow,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Confirm,
        Action::Cancel,
        Action::Complete,
        Action::NoShow,
    ];

    /// The action named by the last path segment; `None` for anything the API does not have.
    pub fn from_path(segment: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == segment)
    }

    /// The path segment.
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Confirm => "confirm",
            Action::Cancel => "cancel",
            Action::Complete => "complete",
            Action::NoShow => "no-show",
        }
    }

    pub fn target(&self) -> AppointmentStatus {
        match self {
            Action::Confirm => AppointmentStatus::Confirmed,
            Action::Cancel => AppointmentStatus::Cancelled,
            Action::Complete => AppointmentStatus::Completed,
            Action::NoShow => AppointmentStatus::NoShow,
        }
    }

    /// Completing a visit or recording that the patient did not come describes what happened,
    /// so the appointment must have begun.
    pub fn needs_started(&self) -> bool {
        matches!(self, Action::Complete | Action::NoShow)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status change the lifecycle does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", transition_detail(*.from, *.action))]
pub struct InvalidTransition {
    pub from: AppointmentStatus,
    pub action: Action,
}

fn transition_detail(from: AppointmentStatus, action: Action) -> String {
    let from = from.in_words();
    match action {
        Action::NoShow => format!("Cannot mark an appointment that is {from} as a no-show."),
        other => format!("Cannot {other} an appointment that is {from}."),
    }
}

/// The lifecycle: scheduled → confirmed; scheduled or confirmed → cancelled, completed or
/// no_show. Asking for the status an appointment already has returns it unchanged, because
/// clients retry requests whose answer they lost.
pub fn transition(
    from: AppointmentStatus,
    action: Action,
) -> Result<AppointmentStatus, InvalidTransition> {
    use AppointmentStatus::{Confirmed, Scheduled};
    match (from, action) {
        (Scheduled, Action::Confirm) => Ok(Confirmed),
        (Scheduled | Confirmed, Action::Cancel | Action::Complete | Action::NoShow) => {
            Ok(action.target())
        }
        (from, action) if from == action.target() => Ok(from),
        (from, action) => Err(InvalidTransition { from, action }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AppointmentStatus::{Cancelled, Completed, Confirmed, NoShow, Scheduled};

    #[test]
    fn the_whole_transition_table() {
        // (from, action, expected): Some(to) allowed, None refused.
        let table = [
            (Scheduled, Action::Confirm, Some(Confirmed)),
            (Scheduled, Action::Cancel, Some(Cancelled)),
            (Scheduled, Action::Complete, Some(Completed)),
            (Scheduled, Action::NoShow, Some(NoShow)),
            (Confirmed, Action::Confirm, Some(Confirmed)),
            (Confirmed, Action::Cancel, Some(Cancelled)),
            (Confirmed, Action::Complete, Some(Completed)),
            (Confirmed, Action::NoShow, Some(NoShow)),
            (Completed, Action::Confirm, None),
            (Completed, Action::Cancel, None),
            (Completed, Action::Complete, Some(Completed)),
            (Completed, Action::NoShow, None),
            (Cancelled, Action::Confirm, None),
            (Cancelled, Action::Cancel, Some(Cancelled)),
            (Cancelled, Action::Complete, None),
            (Cancelled, Action::NoShow, None),
            (NoShow, Action::Confirm, None),
            (NoShow, Action::Cancel, None),
            (NoShow, Action::Complete, None),
            (NoShow, Action::NoShow, Some(NoShow)),
        ];
        assert_eq!(
            table.len(),
            AppointmentStatus::ALL.len() * Action::ALL.len()
        );
        for (from, action, expected) in table {
            let result = transition(from, action);
            match expected {
                Some(to) => assert_eq!(result, Ok(to), "{from} + {action}"),
                None => assert_eq!(
                    result,
                    Err(InvalidTransition { from, action }),
                    "{from} + {action}"
                ),
            }
        }
    }

    #[test]
    fn refused_transitions_name_both_ends() {
        let error = transition(Cancelled, Action::Complete).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cannot complete an appointment that is cancelled."
        );
        let error = transition(Completed, Action::NoShow).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cannot mark an appointment that is completed as a no-show."
        );
        let error = transition(NoShow, Action::Confirm).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cannot confirm an appointment that is marked as a no-show."
        );
    }

    #[test]
    fn actions_and_statuses_parse_their_wire_names_only() {
        assert_eq!(Action::from_path("no-show"), Some(Action::NoShow));
        assert_eq!(Action::from_path("confirm"), Some(Action::Confirm));
        assert_eq!(Action::from_path("no_show"), None);
        assert_eq!(Action::from_path("Confirm"), None);
        assert_eq!(Action::from_path("delete"), None);
        for status in AppointmentStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!("no-show".parse::<AppointmentStatus>(), Err(UnknownStatus));
    }
}
