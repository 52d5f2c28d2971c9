//! X-ray uploads by presigned URL: the file goes from the client straight to S3 (the stand-in,
//! over real HTTP, through the URL and headers the API signed), then its completion — the
//! client's call or S3's "Object Created" event in the worker — checks it and makes it the
//! X-ray of the upload's id. Refused files leave no X-ray, no job and no object behind.

use crate::xrays::{gradient, incompressible_png, register_patient, staged_job};
use pulso_tests::{Client, TestApp, TestOptions, TestResponse, run_media_upkeep};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::ClinicId;
use shared::xrays::Sha256Digest;
use shared::xrays::test_images::{png, png_header_claiming};

fn plan(bytes: &[u8], content_type: &str) -> Value {
    json!({
        "byte_size": bytes.len(),
        "sha256": Sha256Digest::of(bytes).hex(),
        "content_type": content_type,
    })
}

async fn open(client: &Client, patient: &str, plan: &Value) -> TestResponse {
    client
        .post(&format!("/patients/{patient}/xray-uploads"), plan)
        .await
}

/// Sends `bytes` with the upload's signed request, as a browser's `fetch` would.
async fn put(upload: &Value, bytes: Vec<u8>) -> u16 {
    let request = &upload["upload"];
    assert_eq!(request["method"], "PUT", "{upload}");
    let mut put = reqwest::Client::new().put(request["url"].as_str().expect("a url"));
    for (name, value) in request["headers"].as_object().expect("headers") {
        if name != "content-length" {
            put = put.header(name, value.as_str().expect("a header value"));
        }
    }
    put.body(bytes)
        .send()
        .await
        .expect("the PUT")
        .status()
        .as_u16()
}

/// The upload's file straight into the bucket, without the signed request (what a client
/// that ignored the signed headers could leave there on a store that checks nothing).
async fn put_unsigned(app: &TestApp, clinic: ClinicId, id: &str, bytes: Vec<u8>) {
    let key = shared::media::MediaKey::upload(clinic, id.parse().expect("an id"));
    app.state
        .media()
        .expect("media")
        .put(
            &key,
            bytes.clone().into(),
            &shared::media::Download {
                content_type: "image/png",
                disposition: "inline",
                cache_control: "no-store",
            },
            &Sha256Digest::of(&bytes).0,
        )
        .await
        .expect("stored");
}

async fn complete(client: &Client, id: &str) -> TestResponse {
    client
        .post_empty(&format!("/xray-uploads/{id}/complete"))
        .await
}

/// What S3 sends through EventBridge when `key` arrives in `bucket`.
fn object_created(bucket: &str, key: &str) -> Value {
    json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-07T10:00:00Z",
        "region": "eu-west-1",
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 1024, "etag": "b1946ac92492d2347c6235b4d2611184",
                       "sequencer": "00617F08299329D189"},
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "reason": "PutObject"
        }
    })
}

#[tokio::test]
async fn a_presigned_upload_becomes_the_xray_of_its_id() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Dentist));
    let patient = register_patient(&app, &clinic).await;
    // Past what a request to a function may carry (XRAY_MAX_BYTES, 4 MiB by default).
    let file = incompressible_png(2200);
    assert!(file.len() > 4_608 * 1024, "{}", file.len());

    let opened = open(&client, &patient, &plan(&file, "image/png")).await;
    assert_eq!(opened.status, 201, "{}", opened.body);
    let id = opened.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(opened.body["status"], "open");
    assert_eq!(
        opened.headers["location"],
        format!("/xray-uploads/{id}").as_str()
    );
    assert_eq!(opened.body["links"]["xray"], format!("/xrays/{id}"));
    let signed = &opened.body["upload"];
    let url = signed["url"].as_str().expect("a url");
    assert!(
        url.contains(&format!("/uploads/{}/{id}?", clinic.id)),
        "{url}"
    );
    assert!(!url.contains(&patient), "no patient data in a URL");
    assert_eq!(signed["headers"]["content-type"], "image/png");
    assert_eq!(signed["headers"]["content-length"], file.len().to_string());
    assert!(
        signed["headers"]["x-amz-checksum-sha256"].is_string(),
        "the checksum is signed: {signed}"
    );
    // Only what is signed (the browser sets Host itself): any other header would need CORS.
    let names: Vec<&String> = signed["headers"]
        .as_object()
        .expect("headers")
        .keys()
        .collect();
    assert_eq!(
        names,
        ["content-length", "content-type", "x-amz-checksum-sha256"],
        "{signed}"
    );
    // Nothing is an X-ray yet.
    client.get(&format!("/xrays/{id}")).await.problem(404);
    assert_eq!(app.count("xrays", clinic.id).await, 0);

    assert_eq!(put(&opened.body, file.clone()).await, 200);
    let accepted = complete(&client, &id).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(accepted.body["xray_id"], id.as_str());
    assert_eq!(
        accepted.headers["location"],
        format!("/xrays/{id}").as_str()
    );
    let job_id = accepted.body["job_id"].as_str().expect("a job").to_owned();

    let shown = client.get(&format!("/xrays/{id}")).await;
    assert_eq!(shown.body["status"], "pending", "{}", shown.body);
    assert_eq!(shown.body["byte_size"], file.len());
    assert_eq!(shown.body["sha256"], Sha256Digest::of(&file).hex());
    assert_eq!(shown.body["width"], 2200);
    let image_key = format!("clinics/{}/xrays/{id}/image", clinic.id);
    // Moved out of `uploads/` (which the bucket's lifecycle empties) to the X-ray's own key.
    assert_eq!(app.media_keys().await, vec![image_key.clone()]);
    let upload = client.get(&format!("/xray-uploads/{id}")).await;
    assert_eq!(upload.body["status"], "accepted");
    assert_eq!(upload.body["job_id"], job_id.as_str());
    assert_eq!(upload.body["upload"], Value::Null);

    // The client's call again, and S3's event: the same X-ray, no second job.
    let again = complete(&client, &id).await;
    assert_eq!(again.status, 202);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.body["job_id"], job_id.as_str());
    let bucket = app.state.media().expect("media").bucket().to_owned();
    let event = object_created(&bucket, &format!("uploads/{}/{id}", clinic.id));
    assert!(shared::worker::upload_arrived(&app.state, &event).await);
    assert_eq!(app.count("xrays", clinic.id).await, 1);
    assert_eq!(app.count("jobs", clinic.id).await, 1);

    // The image: a presigned GET of the very bytes, in `media` and behind the API's route.
    let image_url = shown.body["media"]["image"]["url"].as_str().expect("a url");
    assert!(image_url.contains(&image_key), "{image_url}");
    let image = pulso_tests::client::fetch(image_url).await;
    assert_eq!(image.status, 200);
    assert_eq!(image.headers["content-type"], "image/png");
    assert_eq!(Sha256Digest::of(&image.bytes), Sha256Digest::of(&file));

    // The analysis reads it from S3 and writes the thumbnail there.
    let job = staged_job(&app, clinic.id, &job_id).await;
    let result = shared::xrays::analyze(app.state.clone(), job)
        .await
        .expect("analysed");
    assert_eq!(result["status"], "ready");
    let thumbnail = client
        .get(&format!("/xrays/{id}/thumbnail"))
        .await
        .follow()
        .await;
    assert_eq!(thumbnail.status, 200);
    assert_eq!(thumbnail.headers["content-type"], "image/jpeg");
    assert!(
        app.media_keys()
            .await
            .contains(&format!("clinics/{}/xrays/{id}/thumbnail.jpg", clinic.id))
    );
}

#[tokio::test]
async fn the_storage_event_alone_completes_an_upload() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Receptionist));
    let patient = register_patient(&app, &clinic).await;
    let file = png(&gradient(320, 240));
    let opened = open(&client, &patient, &plan(&file, "image/png")).await;
    let id = opened.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(put(&opened.body, file).await, 200);

    // The client never calls back: S3's event does the completion.
    let bucket = app.state.media().expect("media").bucket().to_owned();
    let key = format!("uploads/{}/{id}", clinic.id);
    assert!(shared::worker::upload_arrived(&app.state, &object_created(&bucket, &key)).await);
    let shown = client.get(&format!("/xrays/{id}")).await;
    assert_eq!(shown.body["status"], "pending", "{}", shown.body);
    assert_eq!(app.count("jobs", clinic.id).await, 1);

    // Events for other buckets, other keys or other sources change nothing.
    for (event, ours) in [
        (object_created("someone-else", &key), true),
        (object_created(&bucket, "clinics/x/xrays/y/image"), true),
        (json!({"source": "pulso.queue", "wake": "abc"}), false),
        (json!({}), false),
    ] {
        assert_eq!(
            shared::worker::upload_arrived(&app.state, &event).await,
            ours
        );
    }
    assert_eq!(app.count("jobs", clinic.id).await, 1);
}

#[tokio::test]
async fn bad_files_are_refused_and_leave_nothing_behind() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Dentist));
    let patient = register_patient(&app, &clinic).await;
    let good = png(&gradient(64, 48));

    // Completed before the file arrived: it stays open.
    let opened = open(&client, &patient, &plan(&good, "image/png")).await;
    let early_id = opened.body["id"].as_str().expect("an id").to_owned();
    let early = complete(&client, &early_id).await;
    assert_eq!(early.problem(409)["type"], "/problems/upload-not-received");
    let still = client.get(&format!("/xray-uploads/{early_id}")).await;
    assert_eq!(still.body["status"], "open");
    assert!(
        still.body["upload"]["url"].is_string(),
        "a fresh PUT: {}",
        still.body
    );

    // Files that are not the announced one, or not an X-ray at all.
    let bomb = png_header_claiming(100_000, 100_000);
    let cases: [(Vec<u8>, Vec<u8>, u16, &str); 4] = [
        // Other bytes than announced (S3 refuses them by the signed checksum; checked again).
        (good.clone(), png(&gradient(64, 49)), 422, "file"),
        // Another size than announced.
        (good.clone(), png(&gradient(128, 96)), 422, "file"),
        // Not an image.
        (
            b"%PDF-1.7 not an x-ray".to_vec(),
            b"%PDF-1.7 not an x-ray".to_vec(),
            415,
            "",
        ),
        // A decompression bomb's header.
        (bomb.clone(), bomb, 422, "image"),
    ];
    for (announced, sent, status, field) in cases {
        let opened = open(&client, &patient, &plan(&announced, "image/png")).await;
        assert_eq!(opened.status, 201, "{}", opened.body);
        let id = opened.body["id"].as_str().expect("an id").to_owned();
        put_unsigned(&app, clinic.id, &id, sent).await;
        let refused = complete(&client, &id).await;
        let problem = refused.problem(status);
        if !field.is_empty() {
            assert_eq!(problem.field.as_deref(), Some(field), "{}", refused.body);
        }
        let upload = client.get(&format!("/xray-uploads/{id}")).await;
        assert_eq!(upload.body["status"], "rejected");
        assert!(upload.body["error"].is_string());
        // Asked again: the same refusal, as a conflict.
        let again = complete(&client, &id).await;
        assert_eq!(again.problem(409)["type"], "/problems/upload-rejected");
    }
    assert_eq!(app.count("xrays", clinic.id).await, 0);
    assert_eq!(app.count("jobs", clinic.id).await, 0);
    assert_eq!(app.media_keys().await, Vec::<String>::new());
}

#[tokio::test]
async fn an_upload_is_announced_within_the_limits_and_belongs_to_its_clinic() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("XRAY_UPLOAD_MAX_BYTES", "1000000".to_owned())],
        ..TestOptions::default()
    })
    .await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Receptionist));
    let patient = register_patient(&app, &clinic).await;
    let digest = "ab".repeat(32);

    for (body, field) in [
        (
            json!({"byte_size": 0, "sha256": digest, "content_type": "image/png"}),
            "byte_size",
        ),
        (
            json!({"byte_size": 1_000_001, "sha256": digest, "content_type": "image/png"}),
            "byte_size",
        ),
        (
            json!({"byte_size": 10, "sha256": "abc", "content_type": "image/png"}),
            "sha256",
        ),
        (
            json!({"byte_size": 10, "sha256": digest, "content_type": "image/gif"}),
            "content_type",
        ),
    ] {
        let refused = open(&client, &patient, &body).await;
        assert_eq!(refused.problem(422).field.as_deref(), Some(field), "{body}");
    }
    let unknown = json!({"byte_size": 10, "sha256": digest, "content_type": "image/png", "x": 1});
    let refused = open(&client, &patient, &unknown).await;
    assert_eq!(refused.problem(422).field.as_deref(), Some("x"));
    assert_eq!(app.count("xray_uploads", clinic.id).await, 0);

    // Another clinic's patient, and another clinic's upload: not found.
    let other = app.client(&router, &app.token(&app.clinic_b, Role::Admin));
    let body = json!({"byte_size": 10, "sha256": digest, "content_type": "image/png"});
    open(&other, &patient, &body).await.problem(404);
    let opened = open(&client, &patient, &body).await;
    let id = opened.body["id"].as_str().expect("an id");
    other.get(&format!("/xray-uploads/{id}")).await.problem(404);
    complete(&other, id).await.problem(404);

    // An archived patient takes no new upload.
    let patients = shared::patients::router(app.state.clone());
    let archived = app
        .client(&patients, &app.token(&clinic, Role::Admin))
        .delete(&format!("/patients/{patient}"))
        .await;
    assert_eq!(archived.status, 204);
    let refused = open(&client, &patient, &body).await;
    assert_eq!(refused.problem(409)["type"], "/problems/patient-archived");
    assert_eq!(app.count("xray_uploads", clinic.id).await, 1);
}

/// Moves the end of upload `id`'s presigned PUT into the past, as if it had been opened long
/// ago.
async fn expire(app: &TestApp, clinic: ClinicId, id: &str) {
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query(
        "UPDATE xray_uploads SET expires_at = now() - interval '2 minutes'
          WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(uuid::Uuid::parse_str(id).expect("an id"))
    .execute(&mut *tx)
    .await
    .expect("expired");
    tx.commit().await.expect("commit");
}

#[tokio::test]
async fn uploads_left_open_are_settled_by_the_media_upkeep() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Dentist));
    let patient = register_patient(&app, &clinic).await;
    let id_of = |opened: &TestResponse| opened.body["id"].as_str().expect("an id").to_owned();

    // Sent, but neither the browser's call nor S3's event came.
    let sent_file = png(&gradient(320, 240));
    let sent = open(&client, &patient, &plan(&sent_file, "image/png")).await;
    assert_eq!(put(&sent.body, sent_file.clone()).await, 200);
    // Never sent.
    let lost_file = png(&gradient(200, 100));
    let lost = open(&client, &patient, &plan(&lost_file, "image/png")).await;
    // Still within its URL's life: left alone, the browser may be sending it right now.
    let live_file = png(&gradient(100, 200));
    let live = open(&client, &patient, &plan(&live_file, "image/png")).await;
    let (sent, lost, live) = (id_of(&sent), id_of(&lost), id_of(&live));
    expire(&app, clinic.id, &sent).await;
    expire(&app, clinic.id, &lost).await;

    let report = run_media_upkeep(&app, clinic.id, 0).await;
    assert_eq!((report.staged, report.failed), (1, 0), "{report:?}");

    // The file that was there is an X-ray, analysed by the same drain.
    let xray = client.get(&format!("/xrays/{sent}")).await;
    assert_eq!(xray.status, 200, "{}", xray.body);
    assert_eq!(xray.body["status"], "ready", "{}", xray.body);
    let accepted = client.get(&format!("/xray-uploads/{sent}")).await;
    assert_eq!(accepted.body["status"], "accepted");

    // The one that never came is over, and says why; completing it now is refused.
    let rejected = client.get(&format!("/xray-uploads/{lost}")).await;
    assert_eq!(rejected.body["status"], "rejected", "{}", rejected.body);
    assert_eq!(rejected.body["upload"], Value::Null);
    assert!(
        rejected.body["error"]
            .as_str()
            .is_some_and(|error| error.contains("did not arrive")),
        "{}",
        rejected.body
    );
    let late = complete(&client, &lost).await;
    assert_eq!(late.problem(409)["type"], "/problems/upload-rejected");
    client.get(&format!("/xrays/{lost}")).await.problem(404);

    // The live one is still open, with a fresh PUT.
    let open_still = client.get(&format!("/xray-uploads/{live}")).await;
    assert_eq!(open_still.body["status"], "open");
    assert!(open_still.body["upload"]["url"].is_string());

    assert_eq!(app.count("xrays", clinic.id).await, 1);
    let mut keys = app.media_keys().await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("clinics/{}/xrays/{sent}/image", clinic.id),
            format!("clinics/{}/xrays/{sent}/thumbnail.jpg", clinic.id),
        ]
    );
}
