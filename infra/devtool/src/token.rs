//! `token`: a local JWT for a real user of the database, signed like the functions expect.
//!
//! The user is looked up (so `sub` names a person with an active membership, and `clinic_id`
//! their clinic) in an owner transaction that lifts FORCE on clinics, users and memberships and
//! is rolled back (see `rls`): a clinic is found by its slug before its id is known. The token
//! carries no role: the API reads it from the membership. `--email` of a person with several
//! clinics gives a token without `clinic_id`; requests then name the clinic in `Pulso-Clinic`.
//! Only the token goes to stdout, so `TOKEN=$(pulso-devtool token --clinic sonrisa --role
//! receptionist)` works. `--email` of an organization admin on no clinic's staff gives a token
//! without `clinic_id` too, for the organization routes.

use crate::rls::{self, Unscoped};
use anyhow::{Context, bail};
use shared::auth::{Claims, Role};
use shared::ids::{ClinicId, UserId};
use sqlx::PgPool;
use uuid::Uuid;

const DEFAULT_TTL_HOURS: i64 = 12;
const MAX_TTL_HOURS: i64 = 24 * 365;
/// Same floor as the functions' configuration (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;
const USAGE: &str = "usage: pulso-devtool token (--email <email> | --clinic <slug> --role <admin|dentist|receptionist>) [--ttl-hours N] [--platform-admin]";

#[derive(Debug, PartialEq, Eq)]
pub struct TokenRequest {
    pub email: Option<String>,
    pub clinic: Option<String>,
    pub role: Option<Role>,
    pub ttl_hours: i64,
    pub platform_admin: bool,
}

impl TokenRequest {
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut request = TokenRequest {
            email: None,
            clinic: None,
            role: None,
            ttl_hours: DEFAULT_TTL_HOURS,
            platform_admin: false,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "--platform-admin" {
                request.platform_admin = true;
                continue;
            }
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag.as_str(), None),
            };
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))?,
            };
            match name {
                "--email" => request.email = Some(value.trim().to_lowercase()),
                "--clinic" => request.clinic = Some(value.trim().to_string()),
                "--role" => request.role = Some(parse_role(&value)?),
                "--ttl-hours" => request.ttl_hours = parse_ttl_hours(&value)?,
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        request.names_one_user()
    }

    /// The request, when it says who the token is for (an email, or a clinic and a role) and
    /// asks platform admin only of an admin.
    fn names_one_user(self) -> anyhow::Result<Self> {
        match (&self.email, &self.clinic, &self.role) {
            _ if self.platform_admin && self.role.is_some_and(|r| r != Role::Admin) => {
                bail!("--platform-admin is only honoured on an admin token\n{USAGE}")
            }
            (Some(_), _, _) | (None, Some(_), Some(_)) => Ok(self),
            (None, Some(_), None) => bail!("--clinic needs --role as well\n{USAGE}"),
            (None, None, _) => bail!("say who the token is for\n{USAGE}"),
        }
    }
}

fn parse_role(value: &str) -> anyhow::Result<Role> {
    Ok(match value.trim() {
        "admin" => Role::Admin,
        "dentist" => Role::Dentist,
        "receptionist" => Role::Receptionist,
        other => bail!("--role must be admin, dentist or receptionist, not {other:?}"),
    })
}

fn parse_ttl_hours(value: &str) -> anyhow::Result<i64> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|hours| (1..=MAX_TTL_HOURS).contains(hours))
        .with_context(|| format!("--ttl-hours must be a whole number from 1 to {MAX_TTL_HOURS}"))
}

pub struct SigningSettings {
    secret: String,
    issuer: String,
    audience: String,
}

impl SigningSettings {
    /// The same variables, and defaults, the functions read (`shared::config`).
    pub fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let secret = var("JWT_HS256_SECRET").context(
            "JWT_HS256_SECRET is not set: use `infra/token` (it reads .dev/env, written by infra/run-local), \
             or `set -a; . .dev/env; set +a` first",
        )?;
        if secret.len() < MIN_SECRET_BYTES {
            bail!(
                "JWT_HS256_SECRET must be at least {MIN_SECRET_BYTES} bytes, like the functions require"
            );
        }
        Ok(Self {
            secret,
            issuer: var("JWT_ISSUER").unwrap_or_else(|| "pulso-local".into()),
            audience: var("JWT_AUDIENCE").unwrap_or_else(|| "pulso".into()),
        })
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    clinic_id: Uuid,
    role: Role,
    full_name: String,
    email: String,
    slug: String,
}

pub async fn issue(
    pool: &PgPool,
    request: &TokenRequest,
    signing: &SigningSettings,
) -> anyhow::Result<String> {
    rls::require_schema(pool).await?;
    if let Some(admin) = find_organization_admin(pool, request).await? {
        return sign_organization_admin(&admin, request, signing);
    }
    let (user, clinics) = find_user(pool, request).await?;

    if request.platform_admin && user.role != Role::Admin {
        bail!(
            "--platform-admin needs an admin user; {} is a {}",
            user.email,
            user.role.as_str()
        );
    }
    if request.platform_admin && !is_operator(pool, user.id).await? {
        bail!(
            "--platform-admin: {} is not listed in platform_operators, so the API would not \
             honour the claim (the demo lists sonrisa's admin; `pulso-devtool seed --reset` \
             restores it)",
            user.email
        );
    }
    let clinic = (clinics == 1).then_some(ClinicId(user.clinic_id));
    let token = sign(user.id, clinic, request, signing)?;
    if clinics == 1 {
        eprintln!(
            "token for {} <{}>, {} at {} (user {}, clinic {}), valid {} h",
            user.full_name,
            user.email,
            user.role.as_str(),
            user.slug,
            user.id,
            user.clinic_id,
            request.ttl_hours
        );
    } else {
        eprintln!(
            "token for {} <{}> (user {}), who works at {clinics} clinics: send Pulso-Clinic \
             with each request (GET /me lists them), valid {} h",
            user.full_name, user.email, user.id, request.ttl_hours
        );
    }
    Ok(token)
}

/// Signs a token for `user`, naming `clinic` as its default (none when they have several or none).
fn sign(
    user: Uuid,
    clinic: Option<ClinicId>,
    request: &TokenRequest,
    signing: &SigningSettings,
) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: UserId(user),
        clinic_id: clinic,
        iss: signing.issuer.clone(),
        aud: signing.audience.clone(),
        iat: now,
        exp: now + request.ttl_hours * 3600,
        platform_admin: request.platform_admin,
    };
    shared::auth::mint_hs256(signing.secret.as_bytes(), &claims).context("signing the token")
}

/// A person on no clinic's staff who administers organizations (the demo's chain admin).
#[derive(sqlx::FromRow)]
struct OrganizationAdminRow {
    id: Uuid,
    full_name: String,
    email: String,
    organizations: i64,
}

/// The person `--email` names when they have no active membership but administer at least one
/// organization; `None` otherwise (then the membership lookup decides, and explains).
async fn find_organization_admin(
    pool: &PgPool,
    request: &TokenRequest,
) -> anyhow::Result<Option<OrganizationAdminRow>> {
    let (Some(email), None, None) = (&request.email, &request.clinic, &request.role) else {
        return Ok(None);
    };
    let mut lookup =
        Unscoped::begin(pool, &["users", "memberships", "organization_admins"]).await?;
    sqlx::query_as(
        "SELECT u.id, u.full_name, u.email, count(*) AS organizations
           FROM users u JOIN organization_admins a ON a.user_id = u.id AND a.active
          WHERE u.email = $1
            AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = u.id AND m.active)
          GROUP BY u.id",
    )
    .bind(email)
    .fetch_optional(&mut *lookup.tx)
    .await
    .context("looking up the organization admin")
}

/// A token without `clinic_id` for an organization admin: requests to the organization routes
/// name the organization in `Pulso-Organization` when they administer several.
fn sign_organization_admin(
    admin: &OrganizationAdminRow,
    request: &TokenRequest,
    signing: &SigningSettings,
) -> anyhow::Result<String> {
    if request.platform_admin {
        bail!(
            "--platform-admin needs an admin user; {} administers organizations only",
            admin.email
        );
    }
    let token = sign(admin.id, None, request, signing)?;
    eprintln!(
        "token for {} <{}> (user {}), org_admin of {} organization(s): GET /organization, \
         GET /organization/dashboard, valid {} h",
        admin.full_name, admin.email, admin.id, admin.organizations, request.ttl_hours
    );
    Ok(token)
}

/// Whether the API will honour a `platform_admin` claim of `user` (`shared::access`).
async fn is_operator(pool: &PgPool, user: Uuid) -> anyhow::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM platform_operators WHERE user_id = $1)")
        .bind(user)
        .fetch_one(pool)
        .await
        .context("looking up the platform operators")
}

/// The user the request names, and in how many of the matching clinics they are active.
async fn find_user(pool: &PgPool, request: &TokenRequest) -> anyhow::Result<(UserRow, usize)> {
    let mut lookup = Unscoped::begin(pool, &["clinics", "users", "memberships"]).await?;
    let users: Vec<UserRow> = sqlx::query_as(
        "SELECT u.id, m.clinic_id, m.role, u.full_name, u.email, c.slug
           FROM users u
           JOIN memberships m ON m.user_id = u.id
           JOIN clinics c ON c.id = m.clinic_id
          WHERE m.active AND c.archived_at IS NULL
            AND ($1::text IS NULL OR u.email = $1)
            AND ($2::text IS NULL OR c.slug = $2)
            AND ($3::user_role IS NULL OR m.role = $3)
          ORDER BY c.slug, m.created_at, u.email",
    )
    .bind(request.email.as_deref())
    .bind(request.clinic.as_deref())
    .bind(request.role)
    .fetch_all(&mut *lookup.tx)
    .await
    .context("looking up the user")?;
    // Dropping `lookup` rolls back, which restores FORCE on the tables.

    let who = match (&request.email, &request.clinic, &request.role) {
        (Some(email), Some(clinic), _) => format!("no active user {email} in clinic {clinic:?}"),
        (Some(email), None, _) => format!("no active user {email}"),
        (None, Some(clinic), Some(role)) => {
            format!("no active {} in clinic {clinic:?}", role.as_str())
        }
        _ => "no matching user".into(),
    };
    // `--clinic --role` takes the first matching user; an email names one person, who may
    // work at several clinics.
    let Some(first) = users.first() else {
        bail!("{who}: run `pulso-devtool seed` (infra/run-local does) or check the spelling");
    };
    let clinics = users.iter().filter(|u| u.id == first.id).count();
    let user = users.into_iter().next().context("no matching user")?;
    Ok((user, clinics))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_both_ways_of_naming_a_user() {
        let request =
            TokenRequest::parse(&args(&["--clinic", "sonrisa", "--role=receptionist"])).unwrap();
        assert_eq!(request.clinic.as_deref(), Some("sonrisa"));
        assert_eq!(request.role, Some(Role::Receptionist));
        assert_eq!(request.ttl_hours, 12);
        let request = TokenRequest::parse(&args(&[
            "--email",
            "Ana.Lopez@sonrisa.pulso.test",
            "--ttl-hours",
            "2",
        ]))
        .unwrap();
        assert_eq!(
            request.email.as_deref(),
            Some("ana.lopez@sonrisa.pulso.test")
        );
        assert_eq!(request.ttl_hours, 2);
    }

    #[test]
    fn rejects_incomplete_or_wrong_options() {
        assert!(TokenRequest::parse(&args(&[])).is_err());
        assert!(TokenRequest::parse(&args(&["--clinic", "sonrisa"])).is_err());
        assert!(TokenRequest::parse(&args(&["--clinic", "sonrisa", "--role", "nurse"])).is_err());
        assert!(TokenRequest::parse(&args(&["--email"])).is_err());
        assert!(TokenRequest::parse(&args(&["--email", "a@b.c", "--ttl-hours", "0"])).is_err());
        assert!(TokenRequest::parse(&args(&["--email", "a@b.c", "--bogus", "1"])).is_err());
    }

    #[test]
    fn says_what_is_missing_or_wrong() {
        let error = |list: &[&str]| TokenRequest::parse(&args(list)).unwrap_err().to_string();
        let usage = "\nusage: pulso-devtool token (--email <email> | --clinic <slug> --role";
        assert!(error(&[]).starts_with(&format!("say who the token is for{usage}")));
        assert!(
            error(&["--clinic", "sonrisa"])
                .starts_with(&format!("--clinic needs --role as well{usage}"))
        );
        assert!(
            error(&["--clinic=sonrisa", "--role=dentist", "--platform-admin"]).starts_with(
                &format!("--platform-admin is only honoured on an admin token{usage}")
            )
        );
        assert!(
            error(&["--bogus", "1"]).starts_with(&format!("unknown option \"--bogus\"{usage}"))
        );
        assert!(error(&["--ttl-hours"]).starts_with(&format!("--ttl-hours needs a value{usage}")));
        assert_eq!(
            error(&["--clinic", "sonrisa", "--role", " nurse "]),
            "--role must be admin, dentist or receptionist, not \"nurse\""
        );
        assert_eq!(
            error(&["--email", "a@b.c", "--ttl-hours", "8761"]),
            "--ttl-hours must be a whole number from 1 to 8760"
        );
        let admin = ["--clinic", "sonrisa", "--role", "admin", "--platform-admin"];
        assert!(TokenRequest::parse(&args(&admin)).unwrap().platform_admin);
    }
}
