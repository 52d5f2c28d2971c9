//! Step f: a background job runs although no worker was running, because its enqueue woke one
//! through the gateway's Invoke API, as on AWS (`shared::queue::presence`): an insurance report
//! of a demo patient is requested and its job followed until it succeeds.

use super::say;
use crate::stack::{Stack, human};
use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A woken worker starts in a second or two (a cold start of a debug build at most); the
/// report itself takes well under a second.
const JOB_WAIT: Duration = Duration::from_secs(60);

pub async fn a_job_wakes_the_worker(stack: &Stack) -> anyhow::Result<()> {
    let step = "f (a job wakes the worker)";
    let started = Instant::now();
    let patients = stack
        .json(Method::GET, "/patients?limit=1", None, 200)
        .await
        .with_context(|| format!("step {step}"))?;
    let insurers = stack
        .json(Method::GET, "/catalogs/insurer", None, 200)
        .await
        .with_context(|| format!("step {step}"))?;
    let (Some(patient), Some(insurer)) = (
        patients["items"][0]["id"].as_str(),
        insurers["items"][0]["code"].as_str(),
    ) else {
        bail!("step {step}: the demo has no patient or no insurer (run with the seed)");
    };
    let request = json!({"patient_id": patient, "from": "2026-01-01", "to": "2026-12-31", "insurer": insurer});
    let accepted = stack
        .json(Method::POST, "/reports/insurance", Some(&request), 202)
        .await
        .with_context(|| format!("step {step}"))?;
    let Some(job) = accepted["job_id"].as_str() else {
        bail!("step {step}: POST /reports/insurance answered no job_id: {accepted}");
    };
    let status = loop {
        let view: Value = stack
            .json(Method::GET, &format!("/jobs/{job}"), None, 200)
            .await
            .with_context(|| format!("step {step}"))?;
        let status = view["status"].as_str().unwrap_or_default().to_owned();
        if matches!(status.as_str(), "succeeded" | "dead") || started.elapsed() > JOB_WAIT {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    say(format!(
        "POST /reports/insurance -> job {job} {status} in {} (the enqueue woke the worker)",
        human(started.elapsed())
    ));
    if status != "succeeded" {
        bail!(
            "step {step}: job {job} is {status:?} after {} (expected succeeded; see .dev/functions.log)",
            human(started.elapsed())
        );
    }
    Ok(())
}
