//! The CloudFormation custom resource protocol of the `migrate` function. CloudFormation invokes
//! it with a Create, Update or Delete request and waits for the answer to be PUT to the
//! request's presigned `ResponseURL` (S3); without one the stack hangs until the resource's
//! `ServiceTimeout` (an hour when none is set) and then fails. So every request is answered: a
//! run that fails or panics answers FAILED with its reason (one line, never a secret), one that
//! would outlast the function answers FAILED before its deadline, and a request that cannot be
//! read answers FAILED as long as it names a `ResponseURL`.
//!
//! Create and Update run the migrations (`super::run`, with settings read per request, so a
//! missing secret is an answer too and not a function that cannot start); Delete answers
//! SUCCESS and touches nothing: deleting the stack never drops the database. The physical id
//! stays the same across updates (a new one would make CloudFormation delete the old).

use super::{Migrated, Settings};
use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::time::Duration;
use tokio::time::Instant;

/// The resource's physical id, the same on every deploy.
pub const PHYSICAL_ID: &str = "pulso-migrations";

/// Time kept before the function's deadline to PUT the answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(10);

/// Attempts at the PUT, and the pause between two.
const PUT_ATTEMPTS: u32 = 3;
const PUT_PAUSE: Duration = Duration::from_millis(500);

/// The longest reason sent: CloudFormation shows it in the stack's events, and caps the whole
/// answer at 4 KiB.
const REASON_MAX_CHARS: usize = 1_000;

/// What the invocation returns (and logs): the answer CloudFormation was given, and whether it
/// reached it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub status: &'static str,
    pub reason: String,
    pub data: HashMap<String, String>,
    /// Whether the PUT to the `ResponseURL` succeeded.
    pub delivered: bool,
}

/// Handles one request, given until `deadline`, with the settings `lookup` gives (the process
/// environment in the function, a map in tests), and answers it at its `ResponseURL` with `http`.
pub async fn on_deploy(
    event: Value,
    deadline: Instant,
    lookup: impl Fn(&str) -> Option<String>,
    http: &reqwest::Client,
) -> Answer {
    let outcome = outcome(&event, deadline, lookup).await;
    let text = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or_default();
    let (status, label, reason, data) = match outcome {
        Ok((reason, data)) => (
            CloudFormationCustomResourceResponseStatus::Success,
            "SUCCESS",
            reason,
            data,
        ),
        Err(reason) => (
            CloudFormationCustomResourceResponseStatus::Failed,
            "FAILED",
            reason,
            HashMap::new(),
        ),
    };
    let reason: String = reason.chars().take(REASON_MAX_CHARS).collect();
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = status;
    response.reason = Some(reason.clone());
    response.physical_resource_id = match text("PhysicalResourceId") {
        "" => PHYSICAL_ID.to_owned(),
        existing => existing.to_owned(),
    };
    response.stack_id = text("StackId").to_owned();
    response.request_id = text("RequestId").to_owned();
    response.logical_resource_id = text("LogicalResourceId").to_owned();
    response.data = data.clone();
    let delivered = match event.get("ResponseURL").and_then(Value::as_str) {
        Some(url) => put(http, url, &response).await,
        None => {
            tracing::error!("the request has no ResponseURL: nobody can be answered");
            false
        }
    };
    let answer = Answer {
        status: label,
        reason,
        data,
        delivered,
    };
    match (label, delivered) {
        ("SUCCESS", true) => tracing::info!(answer = ?answer, "deploy request answered"),
        _ => tracing::error!(answer = ?answer, "deploy request failed or was not answered"),
    }
    answer
}

/// The request's outcome: the reason and data of a success, or the reason of a failure.
async fn outcome(
    event: &Value,
    deadline: Instant,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(String, HashMap<String, String>), String> {
    let request: CloudFormationCustomResourceRequest = serde_json::from_value(event.clone())
        .map_err(|error| format!("not a CloudFormation custom resource request: {error}"))?;
    if matches!(request, CloudFormationCustomResourceRequest::Delete(_)) {
        return Ok((
            "nothing to undo: the database and its schema are kept".into(),
            HashMap::new(),
        ));
    }
    let budget = deadline
        .checked_duration_since(Instant::now())
        .and_then(|left| left.checked_sub(ANSWER_MARGIN))
        .ok_or("no time left to run the migrations (raise the function's Timeout)")?;
    // A panic is a failed run, answered like any other. Boxed: the run's future is deep
    // (secrets, connection, migrator), too deep for a function's main to hold inline.
    let run = Box::pin(
        AssertUnwindSafe(async {
            let settings = Settings::load_from(lookup)
                .await
                .map_err(|error| error.to_string())?;
            super::run(&settings)
                .await
                .map_err(|error| error.to_string())
        })
        .catch_unwind(),
    );
    let migrated = match tokio::time::timeout(budget, run).await {
        Ok(Ok(result)) => result?,
        Ok(Err(_)) => return Err("the run stopped unexpectedly (a panic; see the log)".into()),
        Err(_) => {
            return Err(format!(
                "the migrations did not finish within {} s: each runs in its own transaction, \
                 so the next deploy goes on from the last one applied",
                budget.as_secs()
            ));
        }
    };
    Ok((reason(&migrated), data(&migrated)))
}

fn reason(migrated: &Migrated) -> String {
    format!(
        "applied {} migration(s); schema at {}; logins set: {}",
        migrated.applied,
        migrated.latest,
        if migrated.logins.is_empty() {
            "none".to_owned()
        } else {
            migrated.logins.join(", ")
        }
    )
}

/// What the stack may read back with `!GetAtt Migrations.<name>`.
fn data(migrated: &Migrated) -> HashMap<String, String> {
    HashMap::from([
        ("Applied".to_owned(), migrated.applied.to_string()),
        ("SchemaVersion".to_owned(), migrated.latest.to_string()),
    ])
}

/// PUTs `response` to the presigned `url`: the body as JSON with an empty content type (what the
/// URL was signed for), retried a few times. Whether it arrived.
async fn put(
    http: &reqwest::Client,
    url: &str,
    response: &CloudFormationCustomResourceResponse,
) -> bool {
    let body = match serde_json::to_vec(response) {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "the answer could not be written");
            return false;
        }
    };
    for attempt in 1..=PUT_ATTEMPTS {
        let sent = http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(reply) if reply.status().is_success() => return true,
            Ok(reply) => {
                tracing::warn!(attempt, status = %reply.status(), "the answer was refused")
            }
            Err(error) => {
                tracing::warn!(attempt, error = %crate::telemetry::ErrorChain(&error), "the answer was not sent")
            }
        }
        tokio::time::sleep(PUT_PAUSE).await;
    }
    false
}
