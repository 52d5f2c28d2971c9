//! Connection strings read from Secrets Manager at cold start (`shared::secrets`),
//! through the real SDK against the local AWS stand-in (moto, the one the Cognito tests use).

use aws_sdk_secretsmanager::Client;
use pulso_tests::{TestApp, TestOptions};
use shared::Config;
use shared::auth::Role;
use shared::config::ConfigError;
use shared::redis::RedisConnector;
use std::collections::HashMap;

const REGION: &str = "eu-west-1";

/// A client of the stand-in, as the tests create their secrets with it.
async fn stand_in() -> Client {
    let sdk = shared::aws::sdk_config(Some(REGION), Some(shared::aws::local_credentials())).await;
    let config = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .endpoint_url(pulso_tests::cognito_endpoint())
        .build();
    Client::from_conf(config)
}

/// Secrets of this test's own (unique names), deleted when it ends.
struct Secrets {
    client: Client,
    arns: Vec<String>,
}

impl Secrets {
    async fn new() -> Self {
        Self {
            client: stand_in().await,
            arns: Vec::new(),
        }
    }

    async fn create(&mut self, text: &str) -> String {
        let created = self
            .client
            .create_secret()
            .name(format!("pulso-test-{}", uuid::Uuid::new_v4()))
            .secret_string(text)
            .send()
            .await
            .expect("the stand-in creates the secret");
        let arn = created.arn().expect("an ARN").to_owned();
        self.arns.push(arn.clone());
        arn
    }

    /// A secret holding `url` as the functions read it (`{"url": …}`).
    async fn create_url(&mut self, url: &str) -> String {
        self.create(&serde_json::json!({ "url": url }).to_string())
            .await
    }

    /// Puts `url` in the secret `arn` as its new value (`{"url": …}`), as a rotation does.
    async fn rotate(&self, arn: &str, url: &str) {
        self.client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(serde_json::json!({ "url": url }).to_string())
            .send()
            .await
            .expect("the stand-in rotates the secret");
    }

    async fn delete_all(self) {
        for arn in self.arns {
            self.client
                .delete_secret()
                .secret_id(arn)
                .force_delete_without_recovery(true)
                .send()
                .await
                .expect("the stand-in deletes the secret");
        }
    }
}

/// The settings that point an app's secret reads at the stand-in.
fn stand_in_env() -> [(&'static str, String); 2] {
    [
        (
            "SECRETS_MANAGER_ENDPOINT_URL",
            pulso_tests::cognito_endpoint(),
        ),
        ("AWS_REGION", REGION.to_owned()),
    ]
}

async fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let endpoint = pulso_tests::cognito_endpoint();
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    map.insert("SECRETS_MANAGER_ENDPOINT_URL".into(), endpoint);
    map.insert("AWS_REGION".into(), REGION.into());
    map.insert(
        "JWT_HS256_SECRET".into(),
        "0123456789abcdef0123456789abcdef".into(),
    );
    Config::load_from(|name| map.get(name).cloned()).await
}

#[tokio::test]
async fn connection_strings_come_from_their_secrets() {
    let mut secrets = Secrets::new().await;
    let database = secrets
        .create(r#"{"url": "postgres://pulso_app:from-the-secret@db.internal:5432/pulso?sslmode=verify-full"}"#)
        .await;
    let system = secrets
        .create(r#"{"url": "postgres://pulso_system:also-secret@db.internal:5432/pulso?sslmode=verify-full", "username": "pulso_system"}"#)
        .await;
    let redis = secrets
        .create(r#"{"url": "rediss://:auth-token@cache.internal:6379"}"#)
        .await;

    let config = load(&[
        ("DATABASE_URL_SECRET_ARN", &database),
        ("SYSTEM_DATABASE_URL_SECRET_ARN", &system),
        ("REDIS_URL_SECRET_ARN", &redis),
    ])
    .await
    .expect("every secret read");
    assert_eq!(
        config.database.url.expose(),
        "postgres://pulso_app:from-the-secret@db.internal:5432/pulso?sslmode=verify-full"
    );
    assert_eq!(
        config.database.system_url.as_ref().map(|url| url.expose()),
        Some("postgres://pulso_system:also-secret@db.internal:5432/pulso?sslmode=verify-full")
    );
    assert_eq!(
        config.redis.url.expose(),
        "rediss://:auth-token@cache.internal:6379"
    );
    // Printed configuration never shows them.
    let printed = format!("{config:?}");
    assert!(!printed.contains("from-the-secret") && !printed.contains("auth-token"));

    // Without any *_SECRET_ARN nothing is called: the plain variables are used.
    let plain = load(&[("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso")])
        .await
        .expect("plain variables");
    assert_eq!(
        plain.database.url.expose(),
        "postgres://pulso_app@127.0.0.1/pulso"
    );
    secrets.delete_all().await;
}

#[tokio::test]
async fn the_data_stack_secrets_connect_to_the_proxy_and_the_cache_given_beside_them() {
    // What template.yaml's data stack makes: a login attached to the instance, reached through
    // RDS Proxy, and an AUTH token generated before the cache existed.
    let mut secrets = Secrets::new().await;
    let login = secrets
        .create(r#"{"engine": "postgres", "host": "pulso.abc.eu-west-1.rds.amazonaws.com", "port": 5432, "username": "pulso_app_login", "password": "gen3rated", "dbname": "pulso"}"#)
        .await;
    let token = secrets
        .create(r#"{"engine": "redis", "password": "t0ken"}"#)
        .await;
    let proxy = "pulso.proxy-abc.eu-west-1.rds.amazonaws.com";
    let cache = "master.pulso.abc.euw1.cache.amazonaws.com";
    let config = load(&[
        ("DATABASE_URL_SECRET_ARN", &login),
        ("DATABASE_URL_HOST", proxy),
        ("REDIS_URL_SECRET_ARN", &token),
        ("REDIS_URL_HOST", cache),
    ])
    .await
    .expect("every secret read");
    assert_eq!(
        config.database.url.expose(),
        format!("postgres://pulso_app_login:gen3rated@{proxy}:5432/pulso?sslmode=verify-full")
    );
    assert_eq!(
        config.redis.url.expose(),
        format!("rediss://:t0ken@{cache}:6379")
    );
    // Read again (a rotation), the URL keeps the host given beside the secret.
    let source = config.database.url_source.expect("read from its secret");
    let again = shared::secrets::read_again(&source)
        .await
        .expect("read again");
    assert!(again.contains(proxy), "{again}");

    // Without the host, a token alone says what is missing.
    let error = load(&[("REDIS_URL_SECRET_ARN", &token)])
        .await
        .expect_err("no host for the token");
    assert!(
        error.to_string().contains("REDIS_URL_SECRET_ARN"),
        "{error}"
    );
    assert!(error.to_string().contains("<NAME>_HOST"), "{error}");
    secrets.delete_all().await;
}

#[tokio::test]
async fn a_secret_that_cannot_be_used_stops_the_start_and_says_which() {
    let mut secrets = Secrets::new().await;
    let not_json = secrets
        .create("postgres://pulso_app:hunter2@db/pulso")
        .await;
    let no_url = secrets.create(r#"{"password": "hunter2"}"#).await;
    let good = secrets
        .create(r#"{"url": "postgres://pulso_app:pw@db/pulso"}"#)
        .await;
    let missing = good.replace("pulso-test-", "pulso-test-missing-");

    let problems = |result: Result<Config, ConfigError>| {
        let error = result.expect_err("refused");
        let text = error.to_string();
        assert!(!text.contains("hunter2"), "a secret's text leaked: {text}");
        error.problems
    };
    let found = problems(load(&[("DATABASE_URL_SECRET_ARN", &not_json)]).await);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("DATABASE_URL_SECRET_ARN") && found[0].contains("is not JSON"));
    let found = problems(
        load(&[
            ("DATABASE_URL_SECRET_ARN", &good),
            ("REDIS_URL_SECRET_ARN", &no_url),
            ("SYSTEM_DATABASE_URL_SECRET_ARN", &missing),
        ])
        .await,
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("REDIS_URL_SECRET_ARN") && p.contains("\"url\""))
    );
    assert!(
        found.iter().any(
            |p| p.starts_with("SYSTEM_DATABASE_URL_SECRET_ARN") && p.contains("cannot be read")
        )
    );
    // Both ways at once is a mistake, not a precedence rule.
    let found = problems(
        load(&[
            ("DATABASE_URL_SECRET_ARN", &good),
            ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
        ])
        .await,
    );
    assert_eq!(
        found,
        vec!["DATABASE_URL: set it or DATABASE_URL_SECRET_ARN, not both".to_owned()]
    );
    // The secret's URL is checked like the variable.
    let wrong = secrets.create(r#"{"url": "mysql://db/pulso"}"#).await;
    let found = problems(load(&[("DATABASE_URL_SECRET_ARN", &wrong)]).await);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("DATABASE_URL: must start with postgres://"))
    );
    secrets.delete_all().await;
}

#[tokio::test]
async fn a_rotated_database_secret_reaches_the_pool_after_one_refusal() {
    let mut secrets = Secrets::new().await;
    // The password the function started with no longer works (here: a role the server does
    // not know), and the secret already holds the new URL, as right after a rotation.
    let arn = secrets
        .create(r#"{"url": "postgres://pulso_nobody:old@127.0.0.1:5432/pulso"}"#)
        .await;
    let app = TestApp::spawn_with(TestOptions {
        env: [("DATABASE_URL_SECRET_ARN", arn.clone())]
            .into_iter()
            .chain(stand_in_env())
            .collect(),
        ..TestOptions::default()
    })
    .await;
    secrets
        .rotate(&arn, &pulso_tests::app_url_for(&app.database))
        .await;

    let patients = shared::patients::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let client = app.client(&patients, &token);
    // The request that meets the refusal answers 503 (retry later) and has the secret re-read.
    let refused = client.get("/patients").await;
    assert_eq!(refused.problem(503)["type"], "/problems/unavailable");
    // The next one connects with the rotated URL.
    let response = client.get("/patients").await;
    assert_eq!(response.status, 200, "{}", response.body);
    secrets.delete_all().await;
}

#[tokio::test]
async fn a_rotated_system_secret_reaches_the_scheduler_and_the_worker_before_their_run() {
    use shared::scheduler::{Scheduler, Tick};
    use shared::worker::Worker;
    use std::time::Duration;
    use tokio::time::Instant;

    let mut secrets = Secrets::new().await;
    let app = TestApp::spawn().await;
    // Both started with a password that no longer works; the secret holds the new one.
    let arn = secrets
        .create(r#"{"url": "postgres://pulso_nobody:old@127.0.0.1:5432/pulso"}"#)
        .await;
    let mut config = (*app.state.config).clone();
    config.database.system_url = Some(shared::config::Secret::new(
        "postgres://pulso_nobody:old@127.0.0.1:5432/pulso",
    ));
    config.database.system_url_source = Some(shared::config::SecretRef {
        arn: arn.clone(),
        endpoint: Some(pulso_tests::cognito_endpoint()),
        region: Some(REGION.to_owned()),
        host: None,
    });
    let scheduler = Scheduler::from_config(config.clone()).expect("scheduler state");
    let worker = Worker::from_config(config, shared::worker::handlers()).expect("worker state");
    secrets
        .rotate(&arn, &pulso_tests::system_url_for(&app.database))
        .await;

    // The tick meets the refusal before its first task, reads the secret and runs them all.
    let report = scheduler
        .run(Tick {
            at: chrono::Utc::now(),
            stop_at: Instant::now() + Duration::from_secs(30),
        })
        .await;
    assert!(report.failed_tasks().is_empty(), "{report:?}");

    // The worker's invocation does the same before it claims anything.
    let margin = worker.state().config.queue.worker_deadline_margin;
    let deadline = chrono::Utc::now() + margin + Duration::from_millis(500);
    worker
        .invocation(deadline.timestamp_millis() as u64, &serde_json::json!({}))
        .await;
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&worker.state().db)
        .await
        .expect("the worker's pool connects with the rotated secret");
    assert_eq!(role, "pulso_system");
    secrets.delete_all().await;
}

#[tokio::test]
async fn a_rotated_redis_token_reaches_the_next_connection() {
    use std::time::Duration;

    let app = TestApp::spawn().await;
    let mut user = RedisUser::create(&app, "old-token").await;
    let mut secrets = Secrets::new().await;
    let arn = secrets.create_url(&user.url("old-token")).await;
    let config = load(&[
        ("DATABASE_URL", "postgres://pulso_app@127.0.0.1/pulso"),
        ("REDIS_URL_SECRET_ARN", &arn),
    ])
    .await
    .expect("configuration");
    let connector = RedisConnector::new(&config.redis).expect("connector");
    let whoami = || async {
        let mut connection = connector.connection().await.ok()?;
        redis::cmd("ACL")
            .arg("WHOAMI")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    assert_eq!(whoami().await.as_deref(), Some(user.name.as_str()));

    // The rotation, later than the connection's credentials were read: the secret gets the new
    // token, the server stops taking the old one, and the open connection drops (a failover).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    secrets.rotate(&arn, &user.url("new-token")).await;
    user.rotate_and_drop("new-token").await;

    // The connection manager reconnects by itself; its new connection reads the secret.
    let mut answered = None;
    for _ in 0..50 {
        answered = whoami().await;
        if answered.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    secrets.delete_all().await;
    assert_eq!(answered.as_deref(), Some(user.name.as_str()));
}

/// A Redis user of a test's own (ElastiCache's AUTH token in the tests above and below):
/// created with `token`, and the URL that logs in as it.
struct RedisUser {
    name: String,
    admin: redis::aio::MultiplexedConnection,
}

impl RedisUser {
    async fn create(app: &TestApp, token: &str) -> Self {
        let mut user = Self {
            name: format!("pulso_test_{}", uuid::Uuid::new_v4().simple()),
            admin: app.redis().await,
        };
        let name = user.name.clone();
        user.acl(&[
            "SETUSER",
            &name,
            "on",
            &format!(">{token}"),
            "~*",
            "&*",
            "+@all",
        ])
        .await;
        user
    }

    async fn acl(&mut self, args: &[&str]) {
        let _: redis::Value = redis::cmd("ACL")
            .arg(args)
            .query_async(&mut self.admin)
            .await
            .expect("ACL");
    }

    fn url(&self, token: &str) -> String {
        let url = pulso_tests::redis_url();
        let (scheme, rest) = url.split_once("://").expect("redis url");
        format!("{scheme}://{}:{token}@{rest}", self.name)
    }

    /// The server takes `token` only, and drops the user's connections (a failover).
    async fn rotate_and_drop(&mut self, token: &str) {
        let name = self.name.clone();
        self.acl(&["SETUSER", &name, "resetpass", &format!(">{token}")])
            .await;
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("USER")
            .arg(&name)
            .query_async(&mut self.admin)
            .await
            .expect("drop the user's connections");
    }
}

impl Drop for RedisUser {
    /// The user goes when the test ends, passed or failed.
    fn drop(&mut self) {
        let name = self.name.clone();
        pulso_tests::clean_up(move || async move {
            if let Ok(client) = redis::Client::open(pulso_tests::redis_url())
                && let Ok(mut admin) = client.get_multiplexed_async_connection().await
            {
                let _: Result<redis::Value, _> = redis::cmd("ACL")
                    .arg("DELUSER")
                    .arg(&name)
                    .query_async(&mut admin)
                    .await;
            }
        });
    }
}

/// Whether the app's shared Redis connection answers a PING.
async fn redis_answers(app: &TestApp) -> bool {
    let Ok(mut connection) = app.state.redis.connection().await else {
        return false;
    };
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .is_ok()
}

#[tokio::test]
async fn a_connection_refused_after_a_rotation_starts_over_when_the_cache_breaker_opens() {
    use std::time::Duration;

    let probe = TestApp::spawn().await;
    let mut user = RedisUser::create(&probe, "old-token").await;
    let mut secrets = Secrets::new().await;
    let arn = secrets.create_url(&user.url("old-token")).await;
    let app = TestApp::spawn_with(TestOptions {
        env: [
            ("REDIS_URL_SECRET_ARN", arn.clone()),
            ("REDIS_BREAKER_THRESHOLD", "1".to_owned()),
            ("REDIS_BREAKER_COOLDOWN_MS", "200".to_owned()),
        ]
        .into_iter()
        .chain(stand_in_env())
        .collect(),
        ..TestOptions::default()
    })
    .await;
    assert!(redis_answers(&app).await);

    // The token is rotated on the server before the secret: the connection manager reconnects
    // with the old one, is refused, and (the redis crate retries I/O errors, not a refused AUTH)
    // stays refused, even once the secret holds the new token.
    user.rotate_and_drop("new-token").await;
    for _ in 0..5 {
        redis_answers(&app).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    secrets.rotate(&arn, &user.url("new-token")).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(
        !redis_answers(&app).await,
        "the refused connection is still the shared one"
    );

    // A cached read meets the refusal and opens the breaker, which drops that connection; the
    // next one, after the cooldown, reads the secret and is let in.
    let catalogs = shared::catalogs::router(app.state.clone());
    let token = app.token(&app.clinic_a, Role::Receptionist);
    let response = app
        .client(&catalogs, &token)
        .get("/catalogs/procedure")
        .await;
    assert_eq!(
        response.status, 200,
        "served from PostgreSQL meanwhile: {}",
        response.body
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut answered = false;
    for _ in 0..30 {
        if redis_answers(&app).await {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    secrets.delete_all().await;
    assert!(
        answered,
        "the shared connection started over with the new token"
    );
}
