//! `/patients/{id}/xrays` and `/xrays/{id}…` through the real router, PostgreSQL and Redis, and
//! the `xray.analyze` handler run directly on the staged job.

use axum::body::Body;
use http::Method;
use image::{GrayImage, Luma};
use pulso_tests::{
    Client, TestApp, TestClinic, TestOptions, TestResponse, drain_jobs, run_media_upkeep,
};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::{ClinicId, JobId, UserId};
use shared::queue::{Job, JobFailure};
use shared::xrays::Sha256Digest;
use shared::xrays::test_images::{jpeg, png, png_header_claiming};
use uuid::Uuid;

pub(crate) fn gradient(width: u32, height: u32) -> GrayImage {
    GrayImage::from_fn(width, height, |x, y| {
        let base = 40 + 170 * x / width;
        let ring = if ((x / 24) + (y / 24)).is_multiple_of(3) {
            25
        } else {
            0
        };
        Luma([(base + ring).min(255) as u8])
    })
}

/// Pixels that do not compress: a PNG of `side`² pixels is about `side`² bytes.
pub(crate) fn incompressible_png(side: u32) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    png(&GrayImage::from_fn(side, side, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Luma([(state >> 56) as u8])
    }))
}

pub(crate) async fn register_patient(app: &TestApp, clinic: &TestClinic) -> String {
    let router = shared::patients::router(app.state.clone());
    let response = app
        .client(&router, &app.token(clinic, Role::Receptionist))
        .post(
            "/patients",
            &json!({"first_name": "Lucía", "last_name": "Serrano"}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.body);
    response.body["id"]
        .as_str()
        .expect("patient id")
        .to_string()
}

async fn upload(
    client: &Client,
    patient: &str,
    content_type: Option<&str>,
    idempotency_key: Option<&str>,
    bytes: Vec<u8>,
) -> TestResponse {
    let mut request = client.request(Method::POST, &format!("/patients/{patient}/xrays"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    client
        .raw(request.body(Body::from(bytes)).expect("request"))
        .await
}

/// The job the upload staged, as the worker would hand it to the handler.
pub(crate) async fn staged_job(app: &TestApp, clinic: ClinicId, job_id: &str) -> Job {
    let id = Uuid::parse_str(job_id).expect("job id");
    let mut tx = app.owner_tx(clinic).await;
    let (kind, payload, max_attempts, created_by): (String, Value, i32, Option<Uuid>) =
        sqlx::query_as(
            "SELECT kind, payload, max_attempts, created_by FROM jobs WHERE clinic_id = $1 AND id = $2",
        )
        .bind(clinic)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .expect("the staged job row");
    tx.rollback().await.ok();
    Job {
        id: JobId::from(id),
        clinic,
        kind,
        payload,
        attempt: 1,
        max_attempts: max_attempts as u32,
        created_by: created_by.map(UserId::from),
    }
}

async fn xray_row(app: &TestApp, clinic: ClinicId, id: &str) -> (String, Option<String>, bool) {
    let mut tx = app.owner_tx(clinic).await;
    let row: (String, Option<String>, bool) = sqlx::query_as(
        "SELECT status::text, error, thumbnail_key IS NOT NULL
         FROM xrays WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(Uuid::parse_str(id).expect("xray id"))
    .fetch_one(&mut *tx)
    .await
    .expect("the xray row");
    tx.rollback().await.ok();
    row
}

/// Makes X-ray `id` an older row: its image in PostgreSQL, as before media moved to S3 (and
/// until the media migration moves it), not in S3.
async fn keep_in_postgres(app: &TestApp, clinic: ClinicId, id: &str, image: &[u8]) {
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query("UPDATE xrays SET image = $3, image_key = NULL WHERE clinic_id = $1 AND id = $2")
        .bind(clinic)
        .bind(Uuid::parse_str(id).expect("xray id"))
        .bind(image)
        .execute(&mut *tx)
        .await
        .expect("the row keeps its image");
    tx.commit().await.expect("commit");
}

/// An analysed X-ray's metadata: a quality check (not a diagnosis) with every metric, and a
/// thumbnail link.
fn assert_quality_check_shown(shown: &Value, result: &Value, xray_id: &str) {
    let analysis = &shown["analysis"];
    assert_eq!(analysis["kind"], "image-quality-check");
    assert!(
        analysis["disclaimer"]
            .as_str()
            .is_some_and(|d| d.contains("not a diagnosis"))
    );
    assert_eq!(analysis["quality_score"], result["quality_score"]);
    assert_eq!(analysis["findings"], json!([]));
    assert_eq!(analysis["image"]["width"], 640);
    for metric in [
        &analysis["exposure"]["dark_share"],
        &analysis["contrast"]["rms"],
        &analysis["sharpness"]["laplacian_variance"],
        &analysis["noise"]["sigma"],
    ] {
        assert!(metric.is_number(), "{analysis}");
    }
    assert!(shown["analysed_at"].is_string());
    assert_eq!(
        shown["links"]["thumbnail"],
        format!("/xrays/{xray_id}/thumbnail")
    );
}

#[tokio::test]
async fn upload_analyse_and_serve_a_png() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Receptionist);
    let client = app.client(&router, &token);
    let patient = register_patient(&app, &clinic).await;
    let original = png(&gradient(640, 480));

    let accepted = upload(&client, &patient, Some("image/png"), None, original.clone()).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let xray_id = accepted.body["xray_id"]
        .as_str()
        .expect("xray_id")
        .to_string();
    let job_id = accepted.body["job_id"]
        .as_str()
        .expect("job_id")
        .to_string();
    assert_eq!(accepted.body["status"], "pending");
    assert_eq!(
        accepted
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/xrays/{xray_id}").as_str())
    );
    assert_eq!(accepted.body["links"]["self"], format!("/xrays/{xray_id}"));
    assert_eq!(accepted.body["links"]["job"], format!("/jobs/{job_id}"));

    // The row is pending and the job row exists, pointing at it.
    assert_eq!(
        xray_row(&app, clinic.id, &xray_id).await,
        ("pending".into(), None, false)
    );
    let job = staged_job(&app, clinic.id, &job_id).await;
    assert_eq!(job.kind, "xray.analyze");
    assert_eq!(job.payload, json!({"xray_id": xray_id}));
    assert_eq!(job.created_by, Some(clinic.receptionist));

    let shown = client.get(&format!("/xrays/{xray_id}")).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["status"], "pending");
    assert_eq!(shown.body["patient_id"], patient.as_str());
    assert_eq!(shown.body["content_type"], "image/png");
    assert_eq!(shown.body["byte_size"], original.len());
    assert_eq!(shown.body["width"], 640);
    assert_eq!(shown.body["height"], 480);
    assert_eq!(shown.body["analysis"], Value::Null);
    assert_eq!(shown.body["links"]["thumbnail"], Value::Null);

    // No thumbnail yet: a conflict that tells the client to come back.
    let early = client.get(&format!("/xrays/{xray_id}/thumbnail")).await;
    assert_eq!(early.problem(409)["type"], "/problems/xray-not-ready");
    assert!(early.headers.get("retry-after").is_some());

    // The original is in S3: a redirect (never cached itself) to a presigned GET that serves
    // it byte for byte; 304 from the API when the client has it (its digest is the ETag).
    let redirect = client.get(&format!("/xrays/{xray_id}/image")).await;
    assert_eq!(redirect.status, 307, "{}", redirect.body);
    assert_eq!(redirect.headers["cache-control"], "no-store");
    let location = redirect.headers["location"].to_str().expect("a location");
    assert!(
        location.contains(&format!("/clinics/{}/xrays/{xray_id}/image?", clinic.id)),
        "{location}"
    );
    assert!(!location.contains(&patient), "no patient data in a URL");
    let image = redirect.follow().await;
    assert_eq!(image.status, 200);
    assert_eq!(image.bytes, original);
    assert_eq!(image.headers["content-type"], "image/png");
    let etag = format!("\"{}\"", Sha256Digest::of(&original).hex());
    assert_eq!(shown.body["sha256"], Sha256Digest::of(&original).hex());
    let cached = client
        .raw(
            client
                .request(Method::GET, &format!("/xrays/{xray_id}/image"))
                .header("if-none-match", &etag)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(cached.status, 304);
    assert!(cached.bytes.is_empty());
    assert_eq!(cached.headers["etag"], etag.as_str());

    // The worker runs the job.
    let result = shared::xrays::analyze(app.state.clone(), job.clone())
        .await
        .expect("the analysis succeeds");
    assert_eq!(result["status"], "ready");
    assert!(result["quality_score"].as_u64().is_some_and(|s| s <= 100));

    let shown = client.get(&format!("/xrays/{xray_id}")).await;
    assert_eq!(shown.body["status"], "ready", "{}", shown.body);
    assert_quality_check_shown(&shown.body, &result, &xray_id);

    let thumbnail = client
        .get(&format!("/xrays/{xray_id}/thumbnail"))
        .await
        .follow()
        .await;
    assert_eq!(thumbnail.status, 200);
    assert_eq!(thumbnail.headers["content-type"], "image/jpeg");
    let decoded = image::load_from_memory(&thumbnail.bytes).expect("a decodable thumbnail");
    assert_eq!((decoded.width(), decoded.height()), (256, 192));
    let thumb_etag = format!("\"{}\"", Sha256Digest::of(&thumbnail.bytes).hex());
    let cached = client
        .raw(
            client
                .request(Method::GET, &format!("/xrays/{xray_id}/thumbnail"))
                .header("if-none-match", thumb_etag)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(cached.status, 304);

    // At-least-once delivery: a second run changes nothing.
    let again = shared::xrays::analyze(app.state.clone(), job)
        .await
        .expect("a second run is harmless");
    assert_eq!(again["status"], "ready");
    let reread = client.get(&format!("/xrays/{xray_id}")).await;
    // The signed URLs may have moved to the next window; everything else is the same.
    let without_media = |mut body: Value| {
        body["media"] = Value::Null;
        body
    };
    assert_eq!(without_media(reread.body), without_media(shown.body));
}

#[tokio::test]
async fn the_format_is_sniffed_and_every_role_may_upload_large_files() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let patient = register_patient(&app, &clinic).await;

    // A JPEG sent as octet-stream, by a dentist: stored and served as image/jpeg.
    let dentist = app.token(&clinic, Role::Dentist);
    let as_dentist = app.client(&router, &dentist);
    let accepted = upload(
        &as_dentist,
        &patient,
        Some("application/octet-stream"),
        None,
        jpeg(&gradient(320, 240), 90),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = accepted.body["xray_id"].as_str().expect("id");
    let image = as_dentist
        .get(&format!("/xrays/{id}/image"))
        .await
        .follow()
        .await;
    assert_eq!(image.headers["content-type"], "image/jpeg");

    // Far over the 64 KiB JSON limit, well under XRAY_MAX_BYTES, by an admin, without a
    // Content-Type at all.
    let large = incompressible_png(700);
    assert!(large.len() > 400 * 1024, "{}", large.len());
    let admin = app.token(&clinic, Role::Admin);
    let accepted = upload(&app.client(&router, &admin), &patient, None, None, large).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);

    assert_eq!(app.count("xrays", clinic.id).await, 2);
    assert_eq!(app.count("jobs", clinic.id).await, 2);

    // No token: 401 before the body is read.
    let anonymous = app
        .anonymous(&router)
        .send_bytes(
            Method::POST,
            &format!("/patients/{patient}/xrays"),
            Some("image/png"),
            png(&gradient(64, 64)),
        )
        .await;
    anonymous.problem(401);
}

/// A header bomb, a truncated file and one over XRAY_MAX_BYTES (256 KiB) are refused with a
/// detail that says why.
async fn refusals_say_why(client: &Client, patient: &str, good_jpeg: &[u8]) {
    let bomb = upload(
        client,
        patient,
        Some("image/png"),
        None,
        png_header_claiming(30_000, 30_000),
    )
    .await;
    assert!(
        bomb.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("30000×30000") && d.contains("megapixels")),
        "{}",
        bomb.body
    );
    let truncated = upload(
        client,
        patient,
        Some("image/jpeg"),
        None,
        good_jpeg[..good_jpeg.len() / 2].to_vec(),
    )
    .await;
    assert!(
        truncated.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("truncated")),
        "{}",
        truncated.body
    );
    let too_large = upload(
        client,
        patient,
        Some("image/png"),
        None,
        incompressible_png(600),
    )
    .await;
    assert!(
        too_large.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("262144")),
        "{}",
        too_large.body
    );
}

#[tokio::test]
async fn bad_uploads_are_refused_and_write_nothing() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("XRAY_MAX_BYTES", (256 * 1024).to_string())],
        ..TestOptions::default()
    })
    .await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Dentist);
    let client = app.client(&router, &token);
    let patient = register_patient(&app, &clinic).await;

    let good_jpeg = jpeg(&gradient(320, 240), 90);
    // (what, Content-Type, body, status, problem type)
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        u16,
        &'static str,
    );
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("empty body", Some("image/png"), Vec::new(), 400, "bad-request"),
        ("text", Some("text/plain"), b"not an image at all".to_vec(), 415, "unsupported-media-type"),
        ("GIF bytes sent as image/png", Some("image/png"), b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;".to_vec(), 415, "unsupported-media-type"),
        ("PDF bytes sent as image/png", Some("image/png"), b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n".to_vec(), 415, "unsupported-media-type"),
        ("truncated JPEG", Some("image/jpeg"), good_jpeg[..good_jpeg.len() / 2].to_vec(), 422, "validation"),
        ("JPEG cut inside its header", Some("image/jpeg"), good_jpeg[..30].to_vec(), 422, "validation"),
        ("30000×30000 header bomb", Some("image/png"), png_header_claiming(30_000, 30_000), 422, "validation"),
        ("40 MP of 16-bit RGB (280 MB to analyse)", Some("image/png"), shared::xrays::test_images::png_header_claiming_layout(6324, 6324, 16, 2), 422, "validation"),
        ("over XRAY_MAX_BYTES", Some("image/png"), incompressible_png(600), 413, "payload-too-large"),
    ];
    for (name, content_type, bytes, status, kind) in cases {
        let response = upload(&client, &patient, content_type, None, bytes).await;
        assert_eq!(
            response.status.as_u16(),
            status,
            "{name}: {}",
            response.body
        );
        let problem = response.problem(status);
        assert_eq!(problem["type"], format!("/problems/{kind}"), "{name}");
        if kind == "validation" {
            assert_eq!(problem["field"], "image", "{name}");
        }
        assert_eq!(app.count("xrays", clinic.id).await, 0, "{name}");
        assert_eq!(app.count("jobs", clinic.id).await, 0, "{name}");
    }

    refusals_say_why(&client, &patient, &good_jpeg).await;

    // A declared length over the limit is refused before the body is read.
    let declared = client
        .raw(
            client
                .request(Method::POST, &format!("/patients/{patient}/xrays"))
                .header("content-length", (10 * 1024 * 1024).to_string())
                .body(Body::from(good_jpeg.clone()))
                .expect("request"),
        )
        .await;
    assert_eq!(declared.problem(413)["type"], "/problems/payload-too-large");

    // A malformed Idempotency-Key and a malformed patient id are 400s naming the input.
    let bad_key = upload(
        &client,
        &patient,
        Some("image/jpeg"),
        Some(""),
        good_jpeg.clone(),
    )
    .await;
    assert_eq!(bad_key.problem(400)["field"], "Idempotency-Key");
    let bad_id = upload(&client, "not-a-uuid", Some("image/jpeg"), None, good_jpeg).await;
    assert_eq!(bad_id.problem(400)["field"], "id");
    assert_eq!(app.count("xrays", clinic.id).await, 0);
    assert_eq!(app.count("jobs", clinic.id).await, 0);
}

#[tokio::test]
async fn corrupt_data_behind_a_valid_header_fails_the_job_cleanly() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Dentist);
    let client = app.client(&router, &token);
    let patient = register_patient(&app, &clinic).await;

    // Chunk structure intact, compressed pixel data garbled: only decoding can tell.
    let mut garbled = png(&gradient(320, 240));
    for byte in garbled.iter_mut().skip(60).take(200) {
        *byte ^= 0x5A;
    }
    let accepted = upload(&client, &patient, Some("image/png"), None, garbled).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let xray_id = accepted.body["xray_id"].as_str().expect("id").to_string();
    let job = staged_job(
        &app,
        clinic.id,
        accepted.body["job_id"].as_str().expect("job"),
    )
    .await;

    let failure = shared::xrays::analyze(app.state.clone(), job.clone())
        .await
        .expect_err("a corrupt image cannot be analysed");
    let JobFailure::Permanent(message) = &failure else {
        panic!("a corrupt image is not worth a retry: {failure:?}");
    };
    assert!(message.contains("corrupt"), "{message}");
    let (status, error, has_thumbnail) = xray_row(&app, clinic.id, &xray_id).await;
    assert_eq!(status, "failed");
    assert_eq!(error.as_deref(), Some(message.as_str()));
    assert!(!has_thumbnail);

    let shown = client.get(&format!("/xrays/{xray_id}")).await;
    assert_eq!(shown.body["status"], "failed");
    assert!(
        shown.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("corrupt"))
    );
    assert_eq!(shown.body["analysis"], Value::Null);
    let thumbnail = client.get(&format!("/xrays/{xray_id}/thumbnail")).await;
    assert_eq!(
        thumbnail.problem(409)["type"],
        "/problems/xray-analysis-failed"
    );
    // The original stays available to the clinic.
    let image = client
        .get(&format!("/xrays/{xray_id}/image"))
        .await
        .follow()
        .await;
    assert_eq!(image.status, 200);

    // A job whose payload names no X-ray of the clinic fails for good, too.
    let stray = Job {
        payload: json!({"xray_id": Uuid::new_v4()}),
        ..job.clone()
    };
    assert!(matches!(
        shared::xrays::analyze(app.state.clone(), stray).await,
        Err(JobFailure::Permanent(_))
    ));
    let malformed = Job {
        payload: json!({"xray": "nope"}),
        ..job
    };
    assert!(matches!(
        shared::xrays::analyze(app.state.clone(), malformed).await,
        Err(JobFailure::Permanent(_))
    ));
}

#[tokio::test]
async fn other_clinics_unknown_and_archived_patients() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let (a, b) = (app.clinic_a, app.clinic_b);
    let token_a = app.token(&a, Role::Dentist);
    let as_token_a = app.client(&router, &token_a);
    let token_b = app.token(&b, Role::Admin);
    let as_token_b = app.client(&router, &token_b);
    let patient = register_patient(&app, &a).await;
    let accepted = upload(
        &as_token_a,
        &patient,
        Some("image/png"),
        None,
        png(&gradient(64, 64)),
    )
    .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let id = accepted.body["xray_id"].as_str().expect("id").to_string();

    // Clinic B sees nothing of clinic A: every route answers 404 like a missing id.
    for uri in [
        format!("/xrays/{id}"),
        format!("/xrays/{id}/image"),
        format!("/xrays/{id}/thumbnail"),
        format!("/patients/{patient}/xrays"),
        format!("/xrays/{}", Uuid::new_v4()),
        format!("/xrays/{}/image", Uuid::new_v4()),
        format!("/xrays/{}/thumbnail", Uuid::new_v4()),
    ] {
        let response = as_token_b.get(&uri).await;
        assert_eq!(
            response.problem(404)["type"],
            "/problems/not-found",
            "{uri}"
        );
    }
    let foreign = upload(
        &as_token_b,
        &patient,
        Some("image/png"),
        None,
        png(&gradient(64, 64)),
    )
    .await;
    assert_eq!(foreign.problem(404)["type"], "/problems/not-found");
    assert!(
        foreign.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("patient"))
    );
    assert_eq!(app.count("xrays", b.id).await, 0);
    assert_eq!(app.count("jobs", b.id).await, 0);

    // Unknown patient in one's own clinic.
    let unknown = Uuid::new_v4().to_string();
    let response = upload(
        &as_token_a,
        &unknown,
        Some("image/png"),
        None,
        png(&gradient(64, 64)),
    )
    .await;
    response.problem(404);
    as_token_a
        .get(&format!("/patients/{unknown}/xrays"))
        .await
        .problem(404);

    // Archived patient: no new X-rays (409 like patients), the old ones stay readable.
    let patients = shared::patients::router(app.state.clone());
    let archived = app
        .client(&patients, &app.token(&a, Role::Admin))
        .delete(&format!("/patients/{patient}"))
        .await;
    assert_eq!(archived.status, 204);
    let refused = upload(
        &as_token_a,
        &patient,
        Some("image/png"),
        None,
        png(&gradient(64, 64)),
    )
    .await;
    assert_eq!(refused.problem(409)["type"], "/problems/patient-archived");
    assert_eq!(app.count("xrays", a.id).await, 1);
    assert_eq!(app.count("jobs", a.id).await, 1);
    // The refused file went to S3 before the refusal, and is gone again.
    assert_eq!(
        app.media_keys().await.len(),
        1,
        "{:?}",
        app.media_keys().await
    );
    let listed = as_token_a.get(&format!("/patients/{patient}/xrays")).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_xray_and_job() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Receptionist);
    let client = app.client(&router, &token);
    let patient = register_patient(&app, &clinic).await;
    let bytes = jpeg(&gradient(320, 240), 90);
    let key = "scan-2026-11-23-0001";

    let first = upload(
        &client,
        &patient,
        Some("image/jpeg"),
        Some(key),
        bytes.clone(),
    )
    .await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let second = upload(
        &client,
        &patient,
        Some("image/jpeg"),
        Some(key),
        bytes.clone(),
    )
    .await;
    assert_eq!(second.status, 202, "{}", second.body);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["location"], first.headers["location"]);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(app.count("xrays", clinic.id).await, 1);
    assert_eq!(app.count("jobs", clinic.id).await, 1);

    // The same key for another file (or patient) is a client bug: 422, nothing written.
    let other_file = upload(
        &client,
        &patient,
        Some("image/jpeg"),
        Some(key),
        jpeg(&gradient(300, 200), 90),
    )
    .await;
    assert_eq!(other_file.problem(422)["field"], "Idempotency-Key");
    let other_patient = register_patient(&app, &clinic).await;
    let response = upload(
        &client,
        &other_patient,
        Some("image/jpeg"),
        Some(key),
        bytes.clone(),
    )
    .await;
    assert_eq!(response.problem(422)["field"], "Idempotency-Key");
    assert_eq!(app.count("xrays", clinic.id).await, 1);
    assert_eq!(app.count("jobs", clinic.id).await, 1);

    // Keys are per clinic: clinic B may use the same one for its own upload.
    let patient_b = register_patient(&app, &app.clinic_b).await;
    let in_b = upload(
        &app.client(&router, &app.token(&app.clinic_b, Role::Dentist)),
        &patient_b,
        Some("image/jpeg"),
        Some(key),
        bytes.clone(),
    )
    .await;
    assert_eq!(in_b.status, 202, "{}", in_b.body);
    assert_ne!(in_b.body["xray_id"], first.body["xray_id"]);

    // A new key is a new upload.
    let third = upload(
        &client,
        &patient,
        Some("image/jpeg"),
        Some("scan-2026-11-23-0002"),
        bytes,
    )
    .await;
    assert_eq!(third.status, 202);
    assert_ne!(third.body["xray_id"], first.body["xray_id"]);
    assert_ne!(third.body["job_id"], first.body["job_id"]);
    assert_eq!(app.count("xrays", clinic.id).await, 2);
}

#[tokio::test]
async fn a_patients_xrays_are_listed_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Receptionist);
    let client = app.client(&router, &token);
    let patient = register_patient(&app, &clinic).await;
    let other = register_patient(&app, &clinic).await;
    let mut ids = Vec::new();
    for size in [64, 80, 96] {
        let accepted = upload(
            &client,
            &patient,
            Some("image/png"),
            None,
            png(&gradient(size, size)),
        )
        .await;
        assert_eq!(accepted.status, 202, "{}", accepted.body);
        ids.push(accepted.body["xray_id"].as_str().expect("id").to_string());
    }
    upload(
        &client,
        &other,
        Some("image/png"),
        None,
        png(&gradient(64, 64)),
    )
    .await;

    let first = client
        .get(&format!("/patients/{patient}/xrays?limit=2"))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let listed = |page: &TestResponse| -> Vec<String> {
        page.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|x| x["id"].as_str().expect("id").to_string())
            .collect()
    };
    assert_eq!(listed(&first), vec![ids[2].clone(), ids[1].clone()]);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = client
        .get(&format!(
            "/patients/{patient}/xrays?limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(listed(&second), vec![ids[0].clone()]);
    assert_eq!(second.body["next_cursor"], Value::Null);
    // Metadata only: no bytes in a list.
    assert!(second.body["items"][0].get("image").is_none());

    let bad = client
        .get(&format!("/patients/{patient}/xrays?cursor=garbage"))
        .await;
    assert_eq!(bad.problem(400)["field"], "cursor");
    let bad = client
        .get(&format!("/patients/{patient}/xrays?limit=0"))
        .await;
    assert_eq!(bad.problem(400)["field"], "limit");
    let bad = client
        .get(&format!("/patients/{patient}/xrays?sort=asc"))
        .await;
    bad.problem(400);
}

/// A job's status, last error and result.
async fn job_row(
    app: &TestApp,
    clinic: ClinicId,
    job_id: &Value,
) -> (String, Option<String>, Option<Value>) {
    let id = Uuid::parse_str(job_id.as_str().expect("job id")).expect("uuid");
    let mut tx = app.owner_tx(clinic).await;
    let row = sqlx::query_as(
        "SELECT status::text, last_error, result FROM jobs WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .expect("job row");
    tx.rollback().await.ok();
    row
}

#[tokio::test]
async fn the_worker_runs_the_registered_handler() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Dentist);
    let client = app.client(&router, &token);
    let patient = register_patient(&app, &clinic).await;
    let good = upload(&client, &patient, None, None, jpeg(&gradient(400, 300), 90)).await;
    assert_eq!(good.status, 202, "{}", good.body);
    let mut garbled = png(&gradient(320, 240));
    for byte in garbled.iter_mut().skip(60).take(200) {
        *byte ^= 0x5A;
    }
    let bad = upload(&client, &patient, None, None, garbled).await;
    assert_eq!(bad.status, 202, "{}", bad.body);

    // The production registry (`shared::worker::handlers`), drained as the worker does.
    drain_jobs(app.system_state(), shared::worker::handlers()).await;

    let good_id = good.body["xray_id"].as_str().expect("id");
    let (status, _, result) = job_row(&app, clinic.id, &good.body["job_id"]).await;
    assert_eq!(status, "succeeded");
    let result = result.expect("a result");
    assert_eq!(result["location"], format!("/xrays/{good_id}"));
    assert_eq!(xray_row(&app, clinic.id, good_id).await.0, "ready");

    // A corrupt file is dead at once, not retried.
    let bad_id = bad.body["xray_id"].as_str().expect("id");
    let (status, last_error, _) = job_row(&app, clinic.id, &bad.body["job_id"]).await;
    assert_eq!(status, "dead");
    assert!(
        last_error.as_deref().is_some_and(|e| e.contains("corrupt")),
        "{last_error:?}"
    );
    assert_eq!(xray_row(&app, clinic.id, bad_id).await.0, "failed");
}

#[tokio::test]
async fn an_xray_whose_job_died_before_recording_reads_as_failed() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let token = app.token(&clinic, Role::Receptionist);
    let client = app.client(&router, &token);
    let patient = register_patient(&app, &clinic).await;
    let uploaded = upload(
        &client,
        &patient,
        Some("image/png"),
        None,
        png(&gradient(64, 48)),
    )
    .await;
    assert_eq!(uploaded.status, 202, "{}", uploaded.body);
    let xray = uploaded.body["xray_id"].as_str().unwrap().to_string();
    let job = uploaded.body["job_id"].as_str().unwrap().to_string();

    // The worker vanished on its last attempt: the queue marked the job dead, the handler never
    // got to mark the X-ray failed.
    let mut tx = app.owner_tx(clinic.id).await;
    sqlx::query(
        "UPDATE jobs SET status = 'dead', last_error = 'the worker stopped during the last attempt', \
         finished_at = now() WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic.id)
    .bind(Uuid::parse_str(&job).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let shown = client.get(&format!("/xrays/{xray}")).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["status"], "failed");
    assert_eq!(
        shown.body["error"],
        "the worker stopped during the last attempt"
    );
    let listed = client.get(&format!("/patients/{patient}/xrays")).await;
    assert_eq!(
        listed.body["items"][0]["status"], "failed",
        "{}",
        listed.body
    );
    let thumbnail = client.get(&format!("/xrays/{xray}/thumbnail")).await;
    assert_eq!(
        thumbnail.problem(409)["type"],
        "/problems/xray-analysis-failed"
    );
}

/// The path and query of a media URL, which the API makes absolute from the request's host.
fn path_of(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_owned(),
        None => url.to_owned(),
    }
}

/// `url` with `param`'s value replaced by `value`.
fn with_param(url: &str, param: &str, value: &str) -> String {
    let (path, query) = url.split_once('?').expect("a query");
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name == param => format!("{name}={value}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[tokio::test]
async fn signed_urls_load_without_a_token_and_refuse_altered_or_expired_ones() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Dentist));
    let browser = app.anonymous(&router);
    let patient = register_patient(&app, &clinic).await;
    let original = png(&gradient(320, 240));
    let accepted = upload(&client, &patient, None, None, original.clone()).await;
    let xray_id = accepted.body["xray_id"].as_str().expect("id").to_owned();
    let job_id = accepted.body["job_id"].as_str().expect("job").to_owned();
    // The API's own signed URLs serve what an older row holds in PostgreSQL.
    keep_in_postgres(&app, clinic.id, &xray_id, &original).await;

    // Before the analysis: the image is there, the thumbnail not yet.
    let shown = client
        .raw(
            client
                .request(Method::GET, &format!("/xrays/{xray_id}"))
                .header("host", "api.pulso.test")
                .header("x-forwarded-proto", "https")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let image_url = shown.body["media"]["image"]["url"].as_str().expect("url");
    assert!(
        image_url.starts_with(&format!(
            "https://api.pulso.test/media/xrays/{xray_id}/image?"
        )),
        "{image_url}"
    );
    assert!(!image_url.contains(&patient), "no patient data in a URL");
    assert_eq!(shown.body["media"]["thumbnail"], Value::Null);
    let expires_at = shown.body["media"]["image"]["expires_at"]
        .as_str()
        .expect("expiry");
    let left = chrono::DateTime::parse_from_rfc3339(expires_at)
        .expect("a time")
        .to_utc()
        - chrono::Utc::now();
    assert!((290..=600).contains(&left.num_seconds()), "{left}");

    // A browser loads it with no Authorization header; its ETag and 304 hold.
    let image = browser.get(&path_of(image_url)).await;
    assert_eq!(image.status, 200, "{}", image.body);
    assert_eq!(image.bytes, original);
    let etag = format!("\"{}\"", Sha256Digest::of(&original).hex());
    assert_eq!(image.headers["etag"], etag.as_str());
    let cache = image.headers["cache-control"].to_str().unwrap_or_default();
    assert!(cache.starts_with("private, max-age="), "{cache}");
    let revalidated = browser
        .raw(
            browser
                .request(Method::GET, &path_of(image_url))
                .header("if-none-match", &etag)
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(revalidated.status, 304);

    // Altered in any part, or for another path or clinic: 403, naming no cause.
    let path = path_of(image_url);
    let signature = path
        .split("signature=")
        .nth(1)
        .expect("a signature")
        .to_owned();
    let flipped = format!(
        "{}{}",
        if signature.starts_with('A') { "B" } else { "A" },
        &signature[1..]
    );
    let thumbnail_path = path.replace("/image?", "/thumbnail?");
    for altered in [
        with_param(&path, "signature", &flipped),
        with_param(&path, "clinic", &app.clinic_b.id.to_string()),
        with_param(&path, "key", "999999"),
        with_param(&path, "signature", "~~~~"),
        thumbnail_path,
    ] {
        let refused = browser.get(&altered).await;
        let problem = refused.problem(403);
        assert_eq!(problem["type"], "/problems/invalid-signature", "{altered}");
    }
    let expires: i64 = path
        .split("expires=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .and_then(|value| value.parse().ok())
        .expect("expires");
    let later = with_param(&path, "expires", &(expires + 300).to_string());
    assert_eq!(
        browser.get(&later).await.problem(403)["type"],
        "/problems/invalid-signature"
    );
    // Missing parts are a malformed request.
    let bare = browser.get(&format!("/media/xrays/{xray_id}/image")).await;
    assert_eq!(bare.problem(400)["type"], "/problems/bad-request");

    // Expired: signed long enough ago.
    let media_path = format!("/media/xrays/{xray_id}/image");
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let old = app
        .state
        .signer
        .sign("", clinic.id, &media_path, an_hour_ago)
        .await
        .expect("signed");
    let expired = browser.get(&old.url).await.problem(403);
    assert_eq!(expired["type"], "/problems/invalid-signature");
    assert!(
        expired["detail"]
            .as_str()
            .is_some_and(|d| d.contains("expired"))
    );

    // A valid signature for another clinic reads in that clinic: this X-ray is not there.
    let other = app
        .state
        .signer
        .sign("", app.clinic_b.id, &media_path, chrono::Utc::now())
        .await
        .expect("signed");
    assert_eq!(
        browser.get(&other.url).await.problem(404)["type"],
        "/problems/not-found"
    );

    // Another process (its own key cache) verifies it; deleting the keys revokes it.
    let elsewhere = shared::signed_urls::UrlSigner::new(
        app.state.db.clone(),
        std::time::Duration::from_secs(300),
        None,
    );
    let query: shared::signed_urls::SignedQuery = serde_urlencoded_query(&path);
    assert_eq!(
        elsewhere
            .verify(&media_path, &query, chrono::Utc::now())
            .await
            .ok(),
        Some(clinic.id)
    );
    let mut owner = app.owner_tx(clinic.id).await;
    sqlx::query("DELETE FROM url_signing_keys")
        .execute(&mut *owner)
        .await
        .expect("delete");
    owner.commit().await.expect("commit");
    let revoked = shared::signed_urls::UrlSigner::new(
        app.state.db.clone(),
        std::time::Duration::from_secs(300),
        None,
    );
    assert!(
        revoked
            .verify(&media_path, &query, chrono::Utc::now())
            .await
            .is_err()
    );

    // After the analysis: the thumbnail too (made into S3, so presigned there), and the list
    // carries both.
    let job = staged_job(&app, clinic.id, &job_id).await;
    shared::xrays::analyze(app.state.clone(), job)
        .await
        .expect("analysed");
    let listed = client.get(&format!("/patients/{patient}/xrays")).await;
    let media = &listed.body["items"][0]["media"];
    let thumbnail_url = media["thumbnail"]["url"].as_str().expect("a thumbnail url");
    assert!(
        thumbnail_url.starts_with(&pulso_tests::cognito_endpoint()),
        "{thumbnail_url}"
    );
    let thumbnail = pulso_tests::client::fetch(thumbnail_url).await;
    assert_eq!(thumbnail.status, 200, "{}", thumbnail.body);
    assert_eq!(thumbnail.headers["content-type"], "image/jpeg");
    // Within one window, every read hands out the same URL: the browser's cache answers.
    let again = client.get(&format!("/patients/{patient}/xrays")).await;
    let same = again.body["items"][0]["media"]["thumbnail"]["url"].as_str();
    let expiry_now = again.body["items"][0]["media"]["thumbnail"]["expires_at"].as_str();
    if expiry_now == media["thumbnail"]["expires_at"].as_str() {
        assert_eq!(same, Some(thumbnail_url));
    }
}

/// The signed query of a media path, as the route parses it.
fn serde_urlencoded_query(path: &str) -> shared::signed_urls::SignedQuery {
    let query = path
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default();
    let pairs: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| {
            let value = match name {
                "expires" | "key" => json!(value.parse::<i64>().expect("a number")),
                _ => json!(value),
            };
            (name.to_owned(), value)
        })
        .collect();
    serde_json::from_value(Value::Object(pairs)).expect("a signed query")
}

/// A signed link has no token, yet counts against the clinic: at a user's read limit for all
/// its links together, and within the clinic's own; a forged link counts for nobody.
#[tokio::test]
async fn signed_links_are_rate_limited_per_clinic() {
    let app = TestApp::spawn_with(TestOptions {
        env: vec![("RATE_LIMITS_PER_USER", "reads=3".to_owned())],
        ..TestOptions::default()
    })
    .await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Dentist));
    let browser = app.anonymous(&router);
    let patient = register_patient(&app, &clinic).await;
    let original = png(&gradient(64, 48));
    let accepted = upload(&client, &patient, None, None, original.clone()).await;
    let xray_id = accepted.body["xray_id"].as_str().expect("id").to_owned();
    keep_in_postgres(&app, clinic.id, &xray_id, &original).await;
    let path = format!("/media/xrays/{xray_id}/image");
    let signed = app
        .state
        .signer
        .sign("", clinic.id, &path, chrono::Utc::now())
        .await
        .expect("signed");

    // Forged links first: refused, and they use up nothing.
    for _ in 0..5 {
        let forged = with_param(&signed.url, "signature", "AAAA");
        browser.get(&forged).await.problem(403);
    }
    for _ in 0..3 {
        assert_eq!(browser.get(&signed.url).await.status, 200);
    }
    let limited = browser.get(&signed.url).await;
    assert_eq!(limited.problem(429)["type"], "/problems/rate-limited");
    assert!(limited.headers.get("retry-after").is_some());
    // The staff's own limits are theirs: the dentist still reads.
    assert_eq!(client.get(&format!("/xrays/{xray_id}")).await.status, 200);
}

#[tokio::test]
async fn older_files_move_to_storage_by_themselves_and_read_the_same() {
    let app = TestApp::spawn().await;
    let router = shared::xrays::router(app.state.clone());
    let clinic = app.clinic_a;
    let client = app.client(&router, &app.token(&clinic, Role::Dentist));
    let patient = register_patient(&app, &clinic).await;
    let original = png(&gradient(320, 240));
    let accepted = upload(&client, &patient, None, None, original.clone()).await;
    let xray_id = accepted.body["xray_id"].as_str().expect("id").to_owned();
    drain_jobs(app.system_state(), shared::worker::handlers()).await;
    let thumbnail = client
        .get(&format!("/xrays/{xray_id}/thumbnail"))
        .await
        .follow()
        .await;
    assert_eq!(thumbnail.status, 200);

    // Make it a row of before S3: image and thumbnail in PostgreSQL, nothing in the bucket.
    keep_in_postgres(&app, clinic.id, &xray_id, &original).await;
    let mut tx = app.owner_tx(clinic.id).await;
    sqlx::query(
        "UPDATE xrays SET thumbnail = $3, thumbnail_key = NULL, thumbnail_sha256 = NULL
          WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic.id)
    .bind(Uuid::parse_str(&xray_id).expect("xray id"))
    .bind(&thumbnail.bytes)
    .execute(&mut *tx)
    .await
    .expect("the row keeps its thumbnail");
    tx.commit().await.expect("commit");
    for key in app.media_keys().await {
        let key = shared::media::MediaKey::stored(key);
        app.state
            .media()
            .expect("media")
            .delete(&key)
            .await
            .expect("deleted");
    }
    let served = client.get(&format!("/xrays/{xray_id}/image")).await;
    assert_eq!(served.status, 200, "served by the function");
    assert_eq!(served.bytes, original);

    // The other clinic holds nothing: its slice stages nothing.
    let other = run_media_upkeep(&app, app.clinic_b.id, 0).await;
    assert_eq!((other.staged, other.failed), (0, 0), "{other:?}");
    let moved = run_media_upkeep(&app, clinic.id, 0).await;
    assert_eq!((moved.staged, moved.failed), (1, 0), "{moved:?}");
    let mut tx = app.owner_tx(clinic.id).await;
    let job: Value = sqlx::query_scalar(
        "SELECT result FROM jobs WHERE clinic_id = $1 AND kind = 'media.upkeep'",
    )
    .bind(clinic.id)
    .fetch_one(&mut *tx)
    .await
    .expect("the upkeep job");
    assert_eq!(job["xrays_moved"], 1, "{job}");

    let mut keys = app.media_keys().await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("clinics/{}/xrays/{xray_id}/image", clinic.id),
            format!("clinics/{}/xrays/{xray_id}/thumbnail.jpg", clinic.id),
        ]
    );
    let (image_bytes, thumbnail_bytes): (Option<Vec<u8>>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT image, thumbnail FROM xrays WHERE clinic_id = $1 AND id = $2")
            .bind(clinic.id)
            .bind(Uuid::parse_str(&xray_id).expect("xray id"))
            .fetch_one(&mut *tx)
            .await
            .expect("the row");
    tx.rollback().await.ok();
    assert_eq!((image_bytes, thumbnail_bytes), (None, None));

    // The same files, now by redirect to S3, with the same headers as a new upload's.
    let image = client.get(&format!("/xrays/{xray_id}/image")).await;
    assert_eq!(image.status, 307);
    let image = image.follow().await;
    assert_eq!(image.bytes, original);
    assert_eq!(image.headers["content-type"], "image/png");
    assert_eq!(
        client.get(&format!("/xrays/{xray_id}")).await.body["sha256"],
        Sha256Digest::of(&original).hex()
    );
    let again = client
        .get(&format!("/xrays/{xray_id}/thumbnail"))
        .await
        .follow()
        .await;
    assert_eq!(again.bytes, thumbnail.bytes);
    assert_eq!(again.headers["content-type"], "image/jpeg");

    // In order now: the next window asks and stages nothing.
    let after = run_media_upkeep(&app, clinic.id, 1).await;
    assert_eq!((after.staged, after.already_staged), (0, 0), "{after:?}");
}
