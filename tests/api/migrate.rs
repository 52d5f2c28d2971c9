//! Migrations on deploy (`shared::migrate`): the CloudFormation custom resource requests the
//! `migrate` function gets, run against an empty database of the test's own, answered to a
//! local stand-in for the presigned S3 `ResponseURL`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::put;
use serde_json::{Value, json};
use shared::migrate::{Answer, on_deploy};
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// An empty database and login roles of this test's own, dropped when it ends.
struct Fresh {
    database: String,
    /// Login names unique to this test (roles are the server's, not the database's).
    app_login: String,
    system_login: String,
}

impl Fresh {
    async fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let fresh = Self {
            database: format!("pulso_migrate_{id}"),
            app_login: format!("pulso_test_app_{id}"),
            system_login: format!("pulso_test_system_{id}"),
        };
        let mut admin = admin().await;
        sqlx::raw_sql(&format!("CREATE DATABASE {}", fresh.database))
            .execute(&mut admin)
            .await
            .expect("create the empty database");
        fresh
    }

    fn owner_url(&self) -> String {
        pulso_tests::admin_url_for(&self.database)
    }

    /// A connection to the database as its owner, to look at what a deploy left.
    async fn owner(&self) -> PgConnection {
        PgConnection::connect(&self.owner_url())
            .await
            .expect("connect as the owner")
    }

    fn login_url(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:5432/{}",
            self.database
        )
    }

    /// The settings of a deploy: the owner, and a login for each of the functions' roles.
    fn settings(&self) -> HashMap<String, String> {
        HashMap::from([
            ("OWNER_DATABASE_URL".to_owned(), self.owner_url()),
            (
                "DATABASE_URL".to_owned(),
                self.login_url(&self.app_login, "app%27s%20p%40ss"),
            ),
            (
                "SYSTEM_DATABASE_URL".to_owned(),
                self.login_url(&self.system_login, "system-pass"),
            ),
        ])
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        let database = self.database.clone();
        let logins = [self.app_login.clone(), self.system_login.clone()];
        pulso_tests::clean_up(move || async move {
            let mut admin = admin().await;
            let mut statements = vec![format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")];
            statements.extend(
                logins
                    .iter()
                    .map(|login| format!("DROP ROLE IF EXISTS {login}")),
            );
            for statement in statements {
                if let Err(error) = sqlx::raw_sql(&statement).execute(&mut admin).await {
                    eprintln!("warning: {statement}: {error}");
                }
            }
        });
    }
}

async fn admin() -> PgConnection {
    PgConnection::connect(&pulso_tests::admin_url())
        .await
        .expect("connect as the owner")
}

/// The answers PUT so far, with their headers.
type Received = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

/// A stand-in for the presigned S3 URL CloudFormation waits on: records each PUT.
#[derive(Clone, Default)]
struct ResponseUrl {
    received: Received,
    url: String,
}

impl ResponseUrl {
    async fn start() -> Self {
        let received = Received::default();
        let app = Router::new()
            .route("/answer", put(record))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            received,
            url: format!("http://{address}/answer"),
        }
    }

    /// The answers PUT so far.
    fn answers(&self) -> Vec<(HeaderMap, Value)> {
        self.received.lock().expect("answers").clone()
    }
}

async fn record(State(received): State<Received>, headers: HeaderMap, body: Bytes) {
    let body = serde_json::from_slice(&body).expect("the answer is JSON");
    received.lock().expect("answers").push((headers, body));
}

/// A request as CloudFormation sends it.
fn request(kind: &str, response_url: &str) -> Value {
    let mut request = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:pulso-migrate",
        "ResponseURL": response_url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/pulso-dev/1",
        "RequestId": uuid::Uuid::new_v4().to_string(),
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::PulsoMigrations",
        "ResourceProperties": {"ServiceToken": "arn", "LatestMigration": "20261207000027"}
    });
    if kind != "Create" {
        request["PhysicalResourceId"] = json!("pulso-migrations");
    }
    if kind == "Update" {
        request["OldResourceProperties"] = json!({"ServiceToken": "arn"});
    }
    request
}

async fn deploy(event: Value, settings: &HashMap<String, String>) -> Answer {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    on_deploy(event, deadline, |name| settings.get(name).cloned(), &http).await
}

fn migrations() -> u64 {
    shared::db::MIGRATOR.iter().count() as u64
}

#[tokio::test]
async fn a_deploy_migrates_an_empty_database_and_gives_the_functions_their_logins() {
    let fresh = Fresh::new().await;
    let cloudformation = ResponseUrl::start().await;
    let settings = fresh.settings();

    let created = deploy(request("Create", &cloudformation.url), &settings).await;
    assert_eq!(created.status, "SUCCESS", "{created:?}");
    assert!(created.delivered);
    assert_eq!(created.data["Applied"], migrations().to_string());
    assert_eq!(
        created.data["SchemaVersion"],
        shared::migrate::latest().to_string()
    );

    // CloudFormation got the answer it waits for, at the URL it presigned, signed for no
    // content type.
    let answers = cloudformation.answers();
    assert_eq!(answers.len(), 1);
    let (headers, body) = &answers[0];
    assert_eq!(
        headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b""[..])
    );
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "pulso-migrations");
    assert_eq!(body["LogicalResourceId"], "Migrations");
    assert_eq!(
        body["StackId"],
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/pulso-dev/1"
    );
    assert_eq!(body["Data"]["Applied"], migrations().to_string());
    assert!(!body.to_string().contains("p@ss") && !body.to_string().contains("system-pass"));

    // Each login connects with its password, as a member of its role (row-level security
    // applies to it as to the role), and sees no clinic's rows unscoped.
    for (user, password, role) in [
        (&fresh.app_login, "app's p@ss", "pulso_app"),
        (&fresh.system_login, "system-pass", "pulso_system"),
    ] {
        let url = fresh.login_url(user, &url_encoded(password));
        let mut login = PgConnection::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("{user} logs in: {error}"));
        let (current, member, superuser): (String, bool, bool) = sqlx::query_as(
            "SELECT current_user::text, pg_has_role(current_user, $1, 'member'), \
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
        )
        .bind(role)
        .fetch_one(&mut login)
        .await
        .expect("who am I");
        assert_eq!(
            (current.as_str(), member, superuser),
            (user.as_str(), true, false)
        );
        let patients: i64 = sqlx::query_scalar("SELECT count(*) FROM patients")
            .fetch_one(&mut login)
            .await
            .expect("the patients table is there and readable");
        assert_eq!(patients, 0);
    }

    // The next deploy applies nothing and still answers; a new password in the secret is the
    // login's password from then on.
    let mut rotated = settings.clone();
    rotated.insert(
        "DATABASE_URL".into(),
        fresh.login_url(&fresh.app_login, "rotated"),
    );
    let updated = deploy(request("Update", &cloudformation.url), &rotated).await;
    assert_eq!(
        (updated.status, updated.data["Applied"].as_str()),
        ("SUCCESS", "0"),
        "{updated:?}"
    );
    PgConnection::connect(&fresh.login_url(&fresh.app_login, "rotated"))
        .await
        .expect("the rotated password logs in");
    // Where the server checks passwords over 127.0.0.1 (Debian's default; not a server set to
    // trust it), the old one no longer does.
    let checks_passwords = PgConnection::connect(&fresh.login_url(&fresh.app_login, "wrong"))
        .await
        .is_err();
    if checks_passwords {
        assert!(
            PgConnection::connect(&fresh.login_url(&fresh.app_login, &url_encoded("app's p@ss")))
                .await
                .is_err(),
            "the old password no longer logs in"
        );
    }

    // Deleting the stack answers and keeps the database.
    let deleted = deploy(request("Delete", &cloudformation.url), &settings).await;
    assert_eq!((deleted.status, deleted.delivered), ("SUCCESS", true));
    let mut owner = fresh.owner().await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut owner)
        .await
        .expect("the schema is still there");
    assert_eq!(applied as u64, migrations());
    owner.close().await.ok();
    assert_eq!(cloudformation.answers().len(), 3);
}

fn url_encoded(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\'', "%27")
        .replace(' ', "%20")
        .replace('@', "%40")
}

#[tokio::test]
async fn two_deploys_at_once_apply_each_migration_once() {
    let fresh = Fresh::new().await;
    let cloudformation = ResponseUrl::start().await;
    let settings = fresh.settings();
    let (first, second) = tokio::join!(
        deploy(request("Create", &cloudformation.url), &settings),
        deploy(request("Update", &cloudformation.url), &settings),
    );
    assert_eq!(
        (first.status, second.status),
        ("SUCCESS", "SUCCESS"),
        "{first:?} {second:?}"
    );
    let applied: u64 = [&first, &second]
        .iter()
        .map(|answer| answer.data["Applied"].parse::<u64>().expect("a count"))
        .sum();
    assert_eq!(applied, migrations());
}

#[tokio::test]
async fn every_failure_is_answered_with_its_reason_and_no_secret() {
    let fresh = Fresh::new().await;
    let cloudformation = ResponseUrl::start().await;
    let with = |changes: &[(&str, Option<String>)]| {
        let mut settings = fresh.settings();
        for (name, value) in changes {
            match value {
                Some(value) => settings.insert((*name).to_owned(), value.clone()),
                None => settings.remove(*name),
            };
        }
        settings
    };
    // A role the server does not know (this server may trust 127.0.0.1 whatever the password).
    let wrong_owner = format!(
        "postgres://pulso_nobody:not-the-password-xyz@127.0.0.1:5432/{}",
        fresh.database
    );
    let cases: Vec<(HashMap<String, String>, Value, &str)> = vec![
        (
            with(&[("OWNER_DATABASE_URL", Some(wrong_owner))]),
            request("Create", &cloudformation.url),
            "cannot connect as the schema owner",
        ),
        (
            with(&[("OWNER_DATABASE_URL", None)]),
            request("Create", &cloudformation.url),
            "OWNER_DATABASE_URL",
        ),
        (
            with(&[("DATABASE_URL", Some(fresh.owner_url()))]),
            request("Update", &cloudformation.url),
            "never as the owner",
        ),
        (
            with(&[(
                "SYSTEM_DATABASE_URL",
                Some("postgres://pulso_system@db/pulso".into()),
            )]),
            request("Create", &cloudformation.url),
            "with a user and a password",
        ),
        (
            fresh.settings(),
            json!({"RequestType": "Replace", "ResponseURL": cloudformation.url, "StackId": "s",
                   "RequestId": "r", "LogicalResourceId": "Migrations"}),
            "not a CloudFormation custom resource request",
        ),
    ];
    for (settings, event, expected) in cases {
        let answer = deploy(event, &settings).await;
        assert_eq!(answer.status, "FAILED", "{answer:?}");
        assert!(answer.delivered, "{answer:?}");
        assert!(answer.reason.contains(expected), "{expected}: {answer:?}");
        assert!(!answer.reason.contains("not-the-password"), "{answer:?}");
    }
    let answers = cloudformation.answers();
    assert_eq!(answers.len(), 5);
    assert!(answers.iter().all(|(_, body)| {
        body["Status"] == "FAILED"
            && body["PhysicalResourceId"] == "pulso-migrations"
            && body["Reason"]
                .as_str()
                .is_some_and(|reason| !reason.is_empty())
    }));

    // No time left before the function's deadline: answered at once, nothing run.
    let http = reqwest::Client::new();
    let settings = fresh.settings();
    let answer = on_deploy(
        request("Create", &cloudformation.url),
        Instant::now() + Duration::from_secs(5),
        |name| settings.get(name).cloned(),
        &http,
    )
    .await;
    assert_eq!(answer.status, "FAILED");
    assert!(answer.reason.contains("no time left"), "{answer:?}");
    let mut owner = fresh.owner().await;
    let history: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut owner)
        .await
        .expect("look");
    assert!(!history, "nothing was applied by the failed requests");
    owner.close().await.ok();
}

#[tokio::test]
async fn clinics_with_older_phone_numbers_get_one_job_to_rewrite_them() {
    let fresh = Fresh::new().await;
    let mut owner = fresh.owner().await;
    // The schema a deployment had before migration 32, with its data.
    let earlier: Vec<_> = shared::db::MIGRATOR
        .iter()
        .filter(|migration| migration.version < 20261207000032)
        .cloned()
        .collect();
    let before = sqlx::migrate::Migrator {
        migrations: earlier.into(),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    before
        .run(&mut owner)
        .await
        .expect("the earlier migrations");
    let pool = sqlx::PgPool::connect(&fresh.owner_url())
        .await
        .expect("a pool");
    let mut clinics = Vec::new();
    for (slug, phone) in [("antigua", "696871213"), ("nueva", "+34696871213")] {
        let clinic = shared::ids::ClinicId::new_random();
        let mut tx = shared::db::begin_platform(&pool, clinic)
            .await
            .expect("a transaction");
        let organization: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO organizations (slug, name) VALUES ($1, $1) RETURNING id",
        )
        .bind(slug)
        .fetch_one(&mut *tx)
        .await
        .expect("an organization");
        sqlx::query(
            "INSERT INTO clinics (id, organization_id, slug, name) VALUES ($1, $2, $3, $3)",
        )
        .bind(clinic)
        .bind(organization)
        .bind(slug)
        .execute(&mut *tx)
        .await
        .expect("a clinic");
        sqlx::query(
            "INSERT INTO patients (clinic_id, first_name, last_name, search_name, phone)
             VALUES ($1, 'Ana', 'Ruiz', 'ana ruiz', $2)",
        )
        .bind(clinic)
        .bind(phone)
        .execute(&mut *tx)
        .await
        .expect("a patient");
        tx.commit().await.expect("commit");
        clinics.push(clinic);
    }

    assert_eq!(
        shared::migrate::apply(&mut owner).await.expect("migrate"),
        1
    );
    let mut staged = Vec::new();
    for clinic in &clinics {
        let mut tx = shared::db::begin_platform(&pool, *clinic)
            .await
            .expect("a transaction");
        let jobs: Vec<(String, Option<String>, i32)> = sqlx::query_as(
            "SELECT status::text, dispatched_at::text, peak_memory_mib FROM jobs
              WHERE clinic_id = $1 AND kind = 'patients.phones'",
        )
        .bind(clinic)
        .fetch_all(&mut *tx)
        .await
        .expect("the jobs");
        staged.push(jobs);
    }
    // The clinic with a number typed before gets one job, queued and not yet in Redis (the
    // queue's sweep pushes it); the other none.
    assert_eq!(staged, [vec![("queued".to_owned(), None, 2)], vec![]]);
    pool.close().await;
}
