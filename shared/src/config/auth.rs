//! Which token issuers Pulso trusts: Pulso's own HS256 tokens (scripts, local development,
//! tests), a Cognito user pool (staff signing in, locally through its stand-in), or both; at
//! least one.

use super::Secret;
use super::vars::Vars;
use std::time::Duration;

/// The smallest HS256 secret accepted: RFC 7518 §3.2 asks for a key as long as the hash.
const MIN_HS256_SECRET_BYTES: usize = 32;

/// Pulso's own tokens, signed with a shared secret (`pulso-devtool token`): their `sub` is a
/// Pulso user id.
#[derive(Clone, Debug)]
pub struct FirstPartyTokens {
    pub secret: Secret,
    pub issuer: String,
    pub audience: String,
}

/// A Cognito user pool: staff sign in there, and invitations create its users. Its tokens'
/// `sub` is Cognito's, mapped to a Pulso user by `user_identities`.
#[derive(Clone, Debug)]
pub struct CognitoConfig {
    /// `eu-west-1_AbC123`: the region, an underscore, the pool's own id.
    pub user_pool_id: String,
    /// The app client tokens must be issued to (`aud` of ID tokens, `client_id` of access tokens).
    pub client_id: String,
    /// Where the Cognito API and the pool's key set are served: AWS's regional endpoint, or a
    /// local stand-in (`COGNITO_ENDPOINT_URL`).
    pub endpoint: String,
    /// The endpoint was configured (a local stand-in): the SDK is pointed at it.
    pub custom_endpoint: bool,
}

impl CognitoConfig {
    pub fn region(&self) -> &str {
        self.user_pool_id
            .split_once('_')
            .map_or("", |(region, _)| region)
    }

    /// The `iss` of the pool's tokens: always AWS's form, also from a local stand-in.
    pub fn issuer(&self) -> String {
        format!(
            "https://cognito-idp.{}.amazonaws.com/{}",
            self.region(),
            self.user_pool_id
        )
    }

    /// The pool's public keys, where its endpoint serves them.
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/{}/.well-known/jwks.json",
            self.endpoint.trim_end_matches('/'),
            self.user_pool_id
        )
    }
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub first_party: Option<FirstPartyTokens>,
    pub cognito: Option<CognitoConfig>,
    /// A token issued (`iat`) longer ago than this is refused whatever its `exp` says: a
    /// provider configured with very long-lived tokens does not make a stolen one good for days.
    pub max_token_age: Duration,
}

/// A clinic's working day and then some; Cognito's tokens last one hour by default.
const DEFAULT_MAX_TOKEN_AGE_SECONDS: u64 = 24 * 3600;

impl AuthConfig {
    /// `None` (with the problem recorded) unless at least one issuer is configured, and each
    /// configured one validly.
    pub(super) fn read(vars: &mut Vars) -> Option<Self> {
        let first_party = read_first_party(vars);
        let cognito = read_cognito(vars);
        let max_token_age =
            vars.seconds("JWT_MAX_TOKEN_AGE_SECONDS", DEFAULT_MAX_TOKEN_AGE_SECONDS);
        vars.check_range(
            "JWT_MAX_TOKEN_AGE_SECONDS",
            max_token_age.as_secs(),
            60..=30 * 86_400,
        );
        let (first_party, cognito) = (first_party?, cognito?);
        if first_party.is_none() && cognito.is_none() {
            vars.problems.push(
                "JWT_HS256_SECRET or COGNITO_USER_POOL_ID: missing (set one or both: Pulso's own \
                 tokens, a Cognito user pool)"
                    .into(),
            );
            return None;
        }
        Some(AuthConfig {
            first_party,
            cognito,
            max_token_age,
        })
    }
}

/// `Some(None)`: not configured; `None`: configured badly (recorded).
fn read_first_party(vars: &mut Vars) -> Option<Option<FirstPartyTokens>> {
    let Some(secret) = vars.optional("JWT_HS256_SECRET") else {
        return Some(None);
    };
    if secret.len() < MIN_HS256_SECRET_BYTES {
        vars.problems.push(format!(
            "JWT_HS256_SECRET: must be at least {MIN_HS256_SECRET_BYTES} bytes"
        ));
        return None;
    }
    Some(Some(FirstPartyTokens {
        secret: Secret::new(secret),
        issuer: vars
            .optional("JWT_ISSUER")
            .unwrap_or_else(|| "pulso-local".into()),
        audience: vars
            .optional("JWT_AUDIENCE")
            .unwrap_or_else(|| "pulso".into()),
    }))
}

fn read_cognito(vars: &mut Vars) -> Option<Option<CognitoConfig>> {
    let pool = vars.optional("COGNITO_USER_POOL_ID");
    let client = vars.optional("COGNITO_CLIENT_ID");
    let endpoint_given = vars.optional("COGNITO_ENDPOINT_URL").is_some();
    let endpoint = vars.endpoint_url("COGNITO_ENDPOINT_URL");
    let (user_pool_id, client_id) = match (pool, client) {
        (None, None) => {
            if endpoint_given {
                vars.problems
                    .push("COGNITO_ENDPOINT_URL: set without COGNITO_USER_POOL_ID".into());
                return None;
            }
            return Some(None);
        }
        (Some(pool), Some(client)) => (pool.trim().to_owned(), client.trim().to_owned()),
        _ => {
            vars.problems
                .push("COGNITO_USER_POOL_ID, COGNITO_CLIENT_ID: set both or neither".into());
            return None;
        }
    };
    let pool_valid = user_pool_id.split_once('_').is_some_and(|(region, id)| {
        !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    let client_valid =
        !client_id.is_empty() && client_id.bytes().all(|b| b.is_ascii_alphanumeric());
    let endpoint_valid = endpoint.is_some() == endpoint_given;
    vars.check(pool_valid, || {
        format!("COGNITO_USER_POOL_ID: must look like eu-west-1_AbC123, got {user_pool_id:?}")
    });
    vars.check(client_valid, || {
        "COGNITO_CLIENT_ID: must be the app client's id (letters and digits)".into()
    });
    if !(pool_valid && client_valid && endpoint_valid) {
        return None;
    }
    let custom_endpoint = endpoint.is_some();
    let mut config = CognitoConfig {
        user_pool_id,
        client_id,
        endpoint: endpoint.unwrap_or_default(),
        custom_endpoint,
    };
    if !custom_endpoint {
        config.endpoint = format!("https://cognito-idp.{}.amazonaws.com", config.region());
    }
    Some(Some(config))
}
