//! What can be wrong with a template, as the gateway reports it at start-up. A leaf of the
//! template reader: every part of it (routes, CORS, schedules, the WebSocket API) returns it.

use std::path::PathBuf;

use crate::cors::CorsError;
use crate::routes::{RouteConflict, RouteKeyError};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not valid YAML")]
    Yaml(#[source] serde_norway::Error),
    #[error("{at}: {problem}")]
    Malformed { at: String, problem: String },
    #[error("{at}")]
    RouteKey {
        at: String,
        #[source]
        source: RouteKeyError,
    },
    #[error("{at}")]
    Cors {
        at: String,
        #[source]
        source: CorsError,
    },
    #[error(transparent)]
    Conflict(#[from] RouteConflict),
    #[error(
        "nothing to serve: no AWS::Serverless::Function has an event of `Type: HttpApi` or `Schedule`, and there is no WebSocket API"
    )]
    NoRoutes,
    #[error(
        "HttpApi resources {first} and {second} have different CorsConfiguration; the local gateway serves every API on one port and needs one"
    )]
    DivergentCors { first: String, second: String },
}
