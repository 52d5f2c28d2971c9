//! `local-secrets`: the local stack's connection strings as Secrets Manager secrets on the
//! local stand-in (moto, `SECRETS_MANAGER_ENDPOINT_URL`), so the functions run the path they
//! run in the cloud: `<NAME>_SECRET_ARN` read at cold start (`shared::secrets`), never the URL
//! in their environment.
//!
//! Each of `shared::secrets::FROM_SECRETS` set in this tool's environment becomes the secret
//! `pulso-local/<database>/<name>` (created, or given the value anew: the stand-in keeps nothing
//! across restarts, and a second local stack has a database of its own), and is printed as a
//! `<NAME>_SECRET_ARN=` line for `.dev/env`.

use anyhow::{Context, bail};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use shared::secrets::FROM_SECRETS;

/// The region of the local secrets (their ARNs name it; the functions' `AWS_REGION` must match).
const REGION_ENV: &str = "AWS_REGION";

pub async fn run() -> anyhow::Result<()> {
    let endpoint = std::env::var("SECRETS_MANAGER_ENDPOINT_URL")
        .context("SECRETS_MANAGER_ENDPOINT_URL is not set (the local stand-in's URL)")?;
    let region = std::env::var(REGION_ENV).ok();
    let sdk =
        shared::aws::sdk_config(region.as_deref(), Some(shared::aws::local_credentials())).await;
    let client = Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .build(),
    );
    let database = std::env::var("PULSO_DATABASE").unwrap_or_else(|_| "pulso".into());
    let mut written = 0;
    for name in FROM_SECRETS {
        let Ok(url) = std::env::var(name) else {
            continue;
        };
        let secret = format!(
            "pulso-local/{database}/{}",
            name.to_lowercase().replace('_', "-")
        );
        let arn = put(
            &client,
            &secret,
            &serde_json::json!({ "url": url }).to_string(),
        )
        .await
        .with_context(|| format!("storing {name} as {secret} on the stand-in at {endpoint}"))?;
        println!("{name}_SECRET_ARN={arn}");
        written += 1;
    }
    if written == 0 {
        bail!("none of {FROM_SECRETS:?} is set: nothing to store");
    }
    Ok(())
}

/// Creates the secret `name` holding `text`, or gives an existing one `text` as its current
/// value; its ARN.
async fn put(client: &Client, name: &str, text: &str) -> anyhow::Result<String> {
    let created = client
        .create_secret()
        .name(name)
        .secret_string(text)
        .send()
        .await;
    let arn = match created {
        Ok(created) => created.arn().map(str::to_owned),
        Err(error) if error.code() == Some("ResourceExistsException") => client
            .put_secret_value()
            .secret_id(name)
            .secret_string(text)
            .send()
            .await
            .map_err(|error| anyhow::anyhow!("{}", error.message().unwrap_or("no answer")))?
            .arn()
            .map(str::to_owned),
        Err(error) => bail!(
            "{}: {}",
            error.code().unwrap_or("no answer"),
            error.message().unwrap_or("the stand-in did not say why")
        ),
    };
    arn.context("the stand-in answered without the secret's ARN")
}
