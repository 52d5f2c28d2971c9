//! The request and response shapes of `/chairs`, a clinic's treatment rooms.

use crate::ids::ChairId;
use crate::input::InputError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A treatment room (cubículo).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema, sqlx::FromRow)]
pub struct Chair {
    pub id: ChairId,
    pub name: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChairList {
    pub items: Vec<Chair>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChairQuery {
    /// `true`: active chairs only; `false`: deactivated ones only; omitted: all.
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Gabinete 3"}))]
pub struct CreateChairRequest {
    /// 1–60 characters, unique in the clinic.
    #[schema(max_length = 60)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": false}))]
pub struct UpdateChairRequest {
    #[serde(default)]
    #[schema(max_length = 60)]
    pub name: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

pub const MAX_CHAIR_NAME_CHARS: usize = 60;

/// A chair's name: trimmed, 1–60 characters, no control characters.
pub fn chair_name(field: &str, name: &str) -> Result<String, InputError> {
    let name = name.trim();
    let count = name.chars().count();
    if count == 0 || count > MAX_CHAIR_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(InputError::invalid(
            field,
            format!("1–{MAX_CHAIR_NAME_CHARS} characters, no control characters"),
        ));
    }
    Ok(name.to_owned())
}
