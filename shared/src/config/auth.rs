//! How tokens are verified: a shared HS256 secret locally, an identity provider's JWKS in the
//! cloud; exactly one of the two.

use super::Secret;
use super::vars::Vars;
use std::time::Duration;

/// The smallest HS256 secret accepted: RFC 7518 §3.2 asks for a key as long as the hash.
const MIN_HS256_SECRET_BYTES: usize = 32;

#[derive(Clone, Debug)]
pub enum JwtVerification {
    /// Local development and tests: tokens signed with a shared secret.
    Hs256 { secret: Secret },
    /// A real identity provider (e.g. Cognito) publishing RS256 keys.
    Jwks { url: String },
}

#[derive(Clone, Debug)]
pub struct AuthConfig {
    pub verification: JwtVerification,
    pub issuer: String,
    pub audience: String,
    /// A token issued (`iat`) longer ago than this is refused whatever its `exp` says: a
    /// provider configured with very long-lived tokens does not make a stolen one good for days.
    pub max_token_age: Duration,
}

/// A clinic's working day and then some; Cognito's tokens last one hour by default.
const DEFAULT_MAX_TOKEN_AGE_SECONDS: u64 = 24 * 3600;

impl AuthConfig {
    /// `None` (with the problem recorded) unless exactly one valid verification is set.
    pub(super) fn read(vars: &mut Vars) -> Option<Self> {
        let secret = vars.optional("JWT_HS256_SECRET");
        let jwks = vars.optional("JWT_JWKS_URL");
        let verification = match (secret, jwks) {
            (Some(_), Some(_)) => {
                vars.problems.push(
                    "JWT_HS256_SECRET, JWT_JWKS_URL: set exactly one (HS256 locally, JWKS with an identity provider)".into(),
                );
                return None;
            }
            (None, None) => {
                vars.problems
                    .push("JWT_HS256_SECRET or JWT_JWKS_URL: missing (set exactly one)".into());
                return None;
            }
            (Some(secret), None) if secret.len() < MIN_HS256_SECRET_BYTES => {
                vars.problems.push(format!(
                    "JWT_HS256_SECRET: must be at least {MIN_HS256_SECRET_BYTES} bytes"
                ));
                return None;
            }
            (Some(secret), None) => JwtVerification::Hs256 {
                secret: Secret::new(secret),
            },
            (None, Some(url))
                if !url.starts_with("https://") && !url.starts_with("http://127.0.0.1") =>
            {
                vars.problems.push(format!(
                    "JWT_JWKS_URL: must be an https:// URL, got {url:?}"
                ));
                return None;
            }
            (None, Some(url)) => JwtVerification::Jwks { url },
        };
        Some(AuthConfig {
            verification,
            issuer: vars
                .optional("JWT_ISSUER")
                .unwrap_or_else(|| "pulso-local".into()),
            audience: vars
                .optional("JWT_AUDIENCE")
                .unwrap_or_else(|| "pulso".into()),
            max_token_age: {
                let age = vars.seconds("JWT_MAX_TOKEN_AGE_SECONDS", DEFAULT_MAX_TOKEN_AGE_SECONDS);
                vars.check_range("JWT_MAX_TOKEN_AGE_SECONDS", age.as_secs(), 60..=30 * 86_400);
                age
            },
        })
    }
}
