//! The local sign-in: the Cognito stand-in's pool (`identity-pool`) and the demo's people in it
//! (`identity-users`), so staff sign in locally as they would in the cloud (`InitiateAuth` with
//! `USER_PASSWORD_AUTH` against `COGNITO_ENDPOINT_URL`, then the ID or access token as bearer).
//!
//! The people go into the pool through the invitations' own code (`shared::identity`), so a
//! re-created stand-in (it keeps nothing) or a re-seeded demo is set up again by the same call:
//! an existing pool user is found, their identity linked once. Every demo person gets
//! [`DEMO_PASSWORD`], permanent (no change asked); the demo's platform operators join the
//! platform group.

use crate::rls::Unscoped;
use anyhow::{Context, bail};
use shared::config::CognitoConfig;
use shared::contact::Email;
use shared::identity::{IdentityProvider, StandIn, StandInPool};
use sqlx::PgPool;
use uuid::Uuid;

/// The local pool's name (the stand-in derives its id from it and its settings).
const POOL_NAME: &str = "pulso-local";
/// The region the local pool lives in (its id starts with it).
const REGION: &str = "eu-west-1";
/// Every demo person's local password: printed by `infra/run-local`, never used anywhere else.
pub const DEMO_PASSWORD: &str = "Pulso-demo-2026";

fn endpoint() -> anyhow::Result<String> {
    std::env::var("COGNITO_ENDPOINT_URL")
        .context("COGNITO_ENDPOINT_URL is not set (infra/run-local writes it to .dev/env)")
}

/// `identity-pool`: makes the local pool and its web client, and prints their ids as
/// `.dev/env` lines.
pub async fn pool() -> anyhow::Result<()> {
    let stand_in = StandIn::new(&endpoint()?, REGION).await;
    let pool = stand_in
        .pool(POOL_NAME)
        .await
        .context("creating the local user pool on the Cognito stand-in")?;
    println!("COGNITO_USER_POOL_ID={}", pool.user_pool_id);
    println!("COGNITO_CLIENT_ID={}", pool.client_id);
    Ok(())
}

/// `identity-users`: every person with a membership or an organization to administer gets into the local pool (found or
/// created), their identity linked, the demo password set; prints who can sign in.
pub async fn users(db: &PgPool) -> anyhow::Result<()> {
    let config = CognitoConfig {
        user_pool_id: std::env::var("COGNITO_USER_POOL_ID")
            .context("COGNITO_USER_POOL_ID is not set (run `pulso-devtool identity-pool`)")?,
        client_id: std::env::var("COGNITO_CLIENT_ID").context("COGNITO_CLIENT_ID is not set")?,
        endpoint: endpoint()?,
        custom_endpoint: true,
    };
    let pool = StandInPool {
        user_pool_id: config.user_pool_id.clone(),
        client_id: config.client_id.clone(),
    };
    let issuer = config.issuer();
    let provider = IdentityProvider::new(config);
    let stand_in = StandIn::new(&endpoint()?, REGION).await;

    let mut lookup = Unscoped::begin(
        db,
        &[
            "users",
            "memberships",
            "organization_admins",
            "platform_operators",
        ],
    )
    .await?;
    let people: Vec<(Uuid, String, String, bool)> = sqlx::query_as(
        "SELECT u.id, u.email, u.full_name,
                EXISTS (SELECT 1 FROM platform_operators o WHERE o.user_id = u.id)
           FROM users u
          WHERE EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.active)
             OR EXISTS (SELECT 1 FROM organization_admins a WHERE a.user_id = u.id AND a.active)
          ORDER BY u.email",
    )
    .fetch_all(&mut *lookup.tx)
    .await
    .context("listing the people to sign in")?;
    drop(lookup);
    if people.is_empty() {
        bail!("nobody to sign in: seed the demo first (pulso-devtool seed)");
    }

    let mut subjects = Vec::with_capacity(people.len());
    let mut created = 0;
    for (user, email, full_name, operator) in &people {
        let address =
            Email::parse("email", email).map_err(|error| anyhow::anyhow!("{email}: {error:?}"))?;
        let pool_user = provider
            .invite(&address, full_name)
            .await
            .with_context(|| format!("creating {email} in the local pool"))?;
        created += usize::from(pool_user.created);
        stand_in
            .set_password(&pool, email, DEMO_PASSWORD, *operator)
            .await
            .with_context(|| format!("setting {email}'s password"))?;
        subjects.push((*user, pool_user.subject));
    }
    // The table is locked while unforced: only the inserts run in that transaction.
    let mut links = Unscoped::begin(db, &["user_identities"]).await?;
    for (user, subject) in &subjects {
        sqlx::query(
            "INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, $2, $3)
             ON CONFLICT (issuer, subject) DO UPDATE SET user_id = EXCLUDED.user_id",
        )
        .bind(&issuer)
        .bind(subject)
        .bind(user)
        .execute(&mut *links.tx)
        .await
        .context("linking an identity")?;
    }
    links.commit().await.context("committing the identities")?;
    eprintln!(
        "sign-in: {} people in the local Cognito pool {} ({created} new), password {DEMO_PASSWORD}, e.g. {}",
        people.len(),
        pool.user_pool_id,
        people[0].1,
    );
    Ok(())
}
