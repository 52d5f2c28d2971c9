//! `/reports` and the `report.insurance` job through the real router, PostgreSQL and Redis:
//! request → 202 with a pending report and a queued job, the job handler run as the worker
//! runs it, the PDF checked by an independent parser (lopdf).

use axum::Router;
use axum::body::Body;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use http::{Method, StatusCode};
use pulso_tests::{Client, TestApp, TestClinic, TestResponse, run_media_upkeep};
use serde_json::{Value, json};
use shared::auth::Role;
use shared::ids::{ClinicId, JobId, PatientId, ReportId, UserId};
use shared::queue::{Job, JobFailure};

fn router(app: &TestApp) -> Router {
    shared::reports::router(app.state.clone())
}

fn at(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|_| panic!("not a time: {raw}"))
        .with_timezone(&Utc)
}

async fn patient(
    app: &TestApp,
    clinic: ClinicId,
    first: &str,
    last: &str,
    national_id: Option<&str>,
) -> PatientId {
    let mut tx = app.owner_tx(clinic).await;
    let id = sqlx::query_scalar(
        "INSERT INTO patients (clinic_id, first_name, last_name, search_name, national_id, notes)
         VALUES ($1, $2, $3, lower($2 || ' ' || $3), $4, 'Alergia a la penicilina')
         RETURNING id",
    )
    .bind(clinic)
    .bind(first)
    .bind(last)
    .bind(national_id)
    .fetch_one(&mut *tx)
    .await
    .expect("insert patient");
    tx.commit().await.expect("commit patient");
    id
}

/// A 30-minute appointment written straight to the table (history is not booked through the
/// API: past appointments are outside its booking window).
async fn appointment(
    app: &TestApp,
    clinic: &TestClinic,
    patient: PatientId,
    starts_at: DateTime<Utc>,
    status: &str,
    code: Option<&str>,
) {
    let mut tx = app.owner_tx(clinic.id).await;
    sqlx::query(
        "INSERT INTO appointments (clinic_id, patient_id, dentist_id, starts_at, ends_at, status,
                                   procedure_code, reason)
         VALUES ($1, $2, $3, $4, $4 + interval '30 minutes', $5::appointment_status, $6,
                 'Dolor intenso en la muela')",
    )
    .bind(clinic.id)
    .bind(patient)
    .bind(clinic.dentist)
    .bind(starts_at)
    .bind(status)
    .bind(code)
    .execute(&mut *tx)
    .await
    .expect("insert appointment");
    tx.commit().await.expect("commit appointment");
}

/// Sets one of the clinic's catalog overrides through the catalogs API, as an admin would.
fn header<'a>(response: &'a TestResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// One request with an optional JSON body and Idempotency-Key.
async fn send(
    client: &Client,
    method: Method,
    uri: &str,
    body: Option<&Value>,
    idempotency_key: Option<&str>,
) -> TestResponse {
    let mut request = client.request(method, uri);
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let body = match body {
        Some(value) => {
            request = request.header("content-type", "application/json");
            Body::from(serde_json::to_vec(value).expect("json"))
        }
        None => Body::empty(),
    };
    client.raw(request.body(body).expect("request")).await
}

fn request_body(patient: PatientId, from: &str, to: &str, insurer: &str) -> Value {
    json!({"patient_id": patient, "from": from, "to": to, "insurer": insurer})
}

/// `POST /reports/insurance`, expecting 202; returns the body.
async fn request_report(client: &Client, body: &Value, key: Option<&str>) -> Value {
    let response = send(client, Method::POST, "/reports/insurance", Some(body), key).await;
    let location = header(&response, "location").map(str::to_owned);
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    let report_id = response.body["report_id"].as_str().expect("report_id");
    assert_eq!(location, Some(format!("/reports/{report_id}")));
    response.body
}

fn report_id(body: &Value) -> ReportId {
    body["report_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("report_id: {body}"))
}

fn job_id(body: &Value) -> JobId {
    body["job_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("job_id: {body}"))
}

/// The job as the worker would hand it to the handler, read from its row.
async fn job(app: &TestApp, clinic: ClinicId, id: JobId, attempt: u32) -> Job {
    let mut tx = app.owner_tx(clinic).await;
    let (kind, payload, created_by, max_attempts): (String, Value, Option<UserId>, i32) =
        sqlx::query_as(
            "SELECT kind, payload, created_by, max_attempts FROM jobs WHERE clinic_id = $1 AND id = $2",
        )
        .bind(clinic)
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .expect("the job row");
    tx.rollback().await.ok();
    Job {
        id,
        clinic,
        kind,
        payload,
        attempt,
        max_attempts: u32::try_from(max_attempts).expect("max_attempts"),
        created_by,
    }
}

async fn run_job(app: &TestApp, clinic: ClinicId, id: JobId) -> Result<Value, JobFailure> {
    shared::reports::build_insurance_report(app.state.clone(), job(app, clinic, id, 1).await).await
}

async fn show(client: &Client, id: ReportId) -> Value {
    let response = client.get(&format!("/reports/{id}")).await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.body
}

/// `GET /reports/{id}/pdf` as answered: a 307 to S3 once the report is ready.
async fn download(client: &Client, id: ReportId) -> TestResponse {
    send(
        client,
        Method::GET,
        &format!("/reports/{id}/pdf"),
        None,
        None,
    )
    .await
}

/// The PDF itself, from S3 by the redirect.
async fn pdf_of(client: &Client, id: ReportId) -> TestResponse {
    let redirect = download(client, id).await;
    assert_eq!(
        redirect.status,
        StatusCode::TEMPORARY_REDIRECT,
        "{}",
        redirect.body
    );
    let pdf = redirect.follow().await;
    assert_eq!(pdf.status, StatusCode::OK);
    pdf
}

/// Makes report `id` an older one: its PDF in PostgreSQL, as before PDFs moved to S3.
async fn hold_in_postgres(app: &TestApp, clinic: ClinicId, id: ReportId, pdf: &[u8]) {
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query(
        "UPDATE reports SET pdf = $3, pdf_key = NULL, pdf_size = NULL
          WHERE clinic_id = $1 AND id = $2",
    )
    .bind(clinic)
    .bind(id)
    .bind(pdf)
    .execute(&mut *tx)
    .await
    .expect("hold the PDF in PostgreSQL");
    tx.commit().await.expect("commit");
}

/// A PDF parsed by lopdf: its text, page by page, one entry per line drawn.
struct ParsedPdf {
    pages: Vec<Vec<String>>,
}

impl ParsedPdf {
    #[track_caller]
    fn parse(bytes: &[u8]) -> ParsedPdf {
        assert!(bytes.starts_with(b"%PDF-"), "not a PDF header");
        assert!(
            bytes.trim_ascii_end().ends_with(b"%%EOF"),
            "no %%EOF trailer"
        );
        let document = lopdf::Document::load_mem(bytes).expect("lopdf parses the report");
        let numbers: Vec<u32> = document.get_pages().keys().copied().collect();
        let pages = numbers
            .iter()
            .map(|number| {
                document
                    .extract_text(&[*number])
                    .expect("extract the page's text")
                    .lines()
                    .map(|line| line.trim().to_string())
                    .filter(|line| !line.is_empty())
                    .collect()
            })
            .collect();
        ParsedPdf { pages }
    }

    fn all_lines(&self) -> Vec<&str> {
        self.pages.iter().flatten().map(String::as_str).collect()
    }

    #[track_caller]
    fn assert_has(&self, line: &str) {
        assert!(
            self.all_lines().contains(&line),
            "no line {line:?} in {:#?}",
            self.pages
        );
    }

    fn mentions(&self, text: &str) -> bool {
        self.all_lines().iter().any(|line| line.contains(text))
    }
}

async fn count_where(app: &TestApp, clinic: ClinicId, sql: &str) -> i64 {
    let mut tx = app.owner_tx(clinic).await;
    let count = sqlx::query_scalar(sql)
        .bind(clinic)
        .fetch_one(&mut *tx)
        .await
        .expect("count");
    tx.rollback().await.ok();
    count
}

/// Maria's April 2025 in clinic A (Madrid, UTC+2: from 2025-03-31T22:00Z to 2025-04-30T22:00Z),
/// with what must stay out of her report around it. The clinic charges 40 € for a cleaning
/// instead of the global 55 €.
async fn seed_april_history(app: &TestApp) -> PatientId {
    let (a, b) = (app.clinic_a, app.clinic_b);
    let maria = patient(app, a.id, "María José", "Núñez Peña", Some("12345678Z")).await;
    let other = patient(app, a.id, "Otro", "Paciente", None).await;
    app.put_catalog_item(&a, "procedure", "LIMP", &json!({"price_cents": 4000}))
        .await;
    let in_b = patient(app, b.id, "María José", "Núñez Peña", Some("12345678Z")).await;
    // The last six are not in the report: cancelled, no-show, still scheduled, outside April in
    // Madrid (the first is 31 March at 23:30, the second 1 May at 00:30), another patient,
    // another clinic.
    #[rustfmt::skip]
    let history = [
        (a, maria, "2025-03-31T22:30:00Z", "completed", Some("REV")),
        (a, maria, "2025-04-10T08:00:00Z", "completed", Some("LIMP")),
        (a, maria, "2025-04-15T08:00:00Z", "completed", Some("EMP")),
        (a, maria, "2025-04-16T08:00:00Z", "completed", None),
        (a, maria, "2025-04-17T08:00:00Z", "cancelled", Some("EXT")),
        (a, maria, "2025-04-18T08:00:00Z", "no_show", Some("ENDO")),
        (a, maria, "2025-04-19T08:00:00Z", "scheduled", Some("CORONA")),
        (a, maria, "2025-03-31T21:30:00Z", "completed", Some("IMPL")),
        (a, maria, "2025-04-30T22:30:00Z", "completed", Some("PROT")),
        (a, other, "2025-04-11T08:00:00Z", "completed", Some("BLANQ")),
        (b, in_b, "2025-04-12T08:00:00Z", "completed", Some("PUENTE")),
    ];
    for (clinic, patient, starts_at, status, procedure) in history {
        appointment(app, &clinic, patient, at(starts_at), status, procedure).await;
    }
    maria
}

/// The April report's text: the four completed visits with catalog prices, nothing else.
fn assert_april_report_text(parsed: &ParsedPdf) {
    for line in [
        "Clínica clinic-a",
        "Informe de procedimientos para aseguradora",
        "María José Núñez Peña",
        "12345678Z",
        "Sanitas (SANITAS)",
        "01/04/2025 – 30/04/2025",
        // 31 March 22:30 UTC is 1 April in Madrid.
        "01/04/2025",
        "REV",
        "Revisión general",
        "35,00 €",
        "Limpieza dental (profilaxis)",
        "40,00 €",
        "Empaste (obturación)",
        "65,00 €",
        "Procedimiento no indicado",
        "sin precio",
        "Total · 4 procedimientos",
        "140,00 €",
        "Página 1 de 1",
    ] {
        parsed.assert_has(line);
    }
    for absent in [
        "31/03/2025",
        "01/05/2025",
        "Extracción",
        "Endodoncia",
        "Corona",
        "Implante",
        "Prótesis",
        "Blanqueamiento",
        "Puente",
        "55,00 €",
        // Clinical text stays out of a document sent to an insurer.
        "penicilina",
        "Dolor",
    ] {
        assert!(
            !parsed.mentions(absent),
            "{absent:?} in {:#?}",
            parsed.pages
        );
    }
}

#[tokio::test]
async fn a_report_is_requested_built_by_its_job_and_downloaded_with_catalog_prices() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let client = app.client(&router, &token);
    let maria = seed_april_history(&app).await;

    let body = request_body(maria, "2025-04-01", "2025-04-30", "SANITAS");
    let accepted = request_report(&client, &body, None).await;
    let id = report_id(&accepted);
    let job = job_id(&accepted);
    assert_eq!(accepted["status"], "pending");
    assert_eq!(accepted["links"]["self"], format!("/reports/{id}"));
    assert_eq!(accepted["links"]["job"], format!("/jobs/{job}"));
    assert_eq!(accepted["links"]["pdf"], Value::Null);

    // The report and its job were written together; the job carries the report id only.
    assert_eq!(app.count("reports", a.id).await, 1);
    assert_eq!(
        count_where(
            &app,
            a.id,
            "SELECT count(*) FROM jobs WHERE clinic_id = $1 AND kind = 'report.insurance' \
             AND status = 'queued'"
        )
        .await,
        1
    );
    let queued = self::job(&app, a.id, job, 1).await;
    assert_eq!(queued.payload, json!({"report_id": id.to_string()}));
    assert_eq!(queued.created_by, Some(a.receptionist));

    let pending = show(&client, id).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["kind"], "insurance");
    assert_eq!(pending["patient_id"], maria.to_string());
    assert_eq!(pending["insurer"], "SANITAS");
    assert_eq!(pending["from"], "2025-04-01");
    assert_eq!(pending["to"], "2025-04-30");
    assert_eq!(pending["requested_by"], a.receptionist.to_string());
    assert_eq!(pending["pdf_bytes"], Value::Null);
    assert_eq!(pending["completed_at"], Value::Null);
    assert_eq!(pending["media"]["pdf"], Value::Null);

    // No PDF while pending: 409 with a hint to come back.
    let early = download(&client, id).await;
    assert_eq!(header(&early, "retry-after"), Some("2"));
    assert_eq!(early.problem(409)["type"], "/problems/report-not-ready");

    let result = run_job(&app, a.id, job).await.expect("the job succeeds");
    assert_eq!(result["built"], true);
    assert_eq!(result["pages"], 1);
    assert_eq!(result["procedures"], 4);
    assert_eq!(result["unpriced"], 1);
    // 35 € (REV, global) + 40 € (LIMP, the clinic's price) + 65 € (EMP, global).
    assert_eq!(result["total_cents"], json!({"EUR": 14_000}));

    let ready = show(&client, id).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["error"], Value::Null);
    assert!(ready["completed_at"].is_string());
    assert_eq!(ready["links"]["pdf"], format!("/reports/{id}/pdf"));

    // The route redirects to S3 (not cached: the URL changes each window); S3 answers with the
    // PDF as it was stored.
    let redirect = download(&client, id).await;
    assert_eq!(redirect.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(header(&redirect, "cache-control"), Some("no-store"));
    let key = format!("clinics/{}/reports/{id}.pdf", a.id);
    assert!(header(&redirect, "location").unwrap().contains(&key));
    let pdf = redirect.follow().await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert_eq!(header(&pdf, "content-type"), Some("application/pdf"));
    let disposition = "attachment; filename=\"informe-sanitas-2025-04-01-2025-04-30.pdf\"";
    assert_eq!(header(&pdf, "content-disposition"), Some(disposition));
    assert_eq!(header(&pdf, "cache-control"), Some("private, no-store"));
    assert_eq!(ready["pdf_bytes"].as_u64(), Some(pdf.bytes.len() as u64));
    assert_eq!(app.media_keys().await, vec![key.clone()]);

    let parsed = ParsedPdf::parse(&pdf.bytes);
    assert_eq!(parsed.pages.len(), 1);
    assert_april_report_text(&parsed);

    // The same PDF by the presigned URL a download link uses, without a token.
    let presigned = ready["media"]["pdf"]["url"]
        .as_str()
        .expect("a presigned url");
    assert!(presigned.contains(&key), "{presigned}");
    assert!(ready["media"]["pdf"]["expires_at"].is_string());
    let by_link = pulso_tests::client::fetch(presigned).await;
    assert_eq!(by_link.status, StatusCode::OK);
    assert_eq!(by_link.bytes, pdf.bytes);

    // A second delivery of the same job (at-least-once) changes nothing.
    let again = run_job(&app, a.id, job).await.expect("a repeat succeeds");
    assert_eq!(again["built"], false);
    let same = pdf_of(&client, id).await;
    assert_eq!(same.bytes, pdf.bytes);
    assert_eq!(app.count("reports", a.id).await, 1);

    // A report made before PDFs moved to S3 is served by the function itself, and its link is
    // the API's own signed route.
    hold_in_postgres(&app, a.id, id, &pdf.bytes).await;
    let older = download(&client, id).await;
    assert_eq!(older.status, StatusCode::OK);
    assert_eq!(header(&older, "content-type"), Some("application/pdf"));
    assert_eq!(header(&older, "content-disposition"), Some(disposition));
    assert_eq!(header(&older, "cache-control"), Some("private, no-store"));
    assert_eq!(older.bytes, pdf.bytes);
    let older_report = show(&client, id).await;
    assert_eq!(older_report["pdf_bytes"], ready["pdf_bytes"]);
    let signed = older_report["media"]["pdf"]["url"]
        .as_str()
        .expect("a signed url");
    assert!(
        signed.starts_with(&format!("/media/reports/{id}/pdf?")),
        "{signed}"
    );
    let by_link = app.anonymous(&router).get(signed).await;
    assert_eq!(by_link.status, StatusCode::OK);
    assert_eq!(by_link.bytes, pdf.bytes);
    assert_eq!(header(&by_link, "cache-control"), Some("private, no-store"));
    let tampered = signed.replace("/pdf?", "/pdf?clinic=x&");
    app.anonymous(&router).get(&tampered).await.problem(400);

    // The media upkeep moves it to S3 by itself: the redirect again, the same bytes.
    app.state
        .media()
        .expect("media")
        .delete(&shared::media::MediaKey::stored(key.clone()))
        .await
        .expect("deleted");
    let upkeep = run_media_upkeep(&app, a.id, 0).await;
    assert_eq!(upkeep.staged, 1, "{upkeep:?}");
    assert_eq!(app.media_keys().await, vec![key.clone()]);
    let moved = pdf_of(&client, id).await;
    assert_eq!(moved.bytes, pdf.bytes);
    assert_eq!(header(&moved, "content-disposition"), Some(disposition));
    assert_eq!(show(&client, id).await["pdf_bytes"], ready["pdf_bytes"]);

    // An admin reads it too; a dentist does neither.
    let admin = app.token(&a, Role::Admin);
    let as_admin = app.client(&router, &admin);
    assert_eq!(show(&as_admin, id).await["status"], "ready");
    let dentist = app.token(&a, Role::Dentist);
    let as_dentist = app.client(&router, &dentist);
    for uri in [format!("/reports/{id}"), format!("/reports/{id}/pdf")] {
        let response = as_dentist.get(&uri).await;
        response.problem(403);
    }
    // Nor through the job's result, which names the report and its totals.
    let jobs = shared::queue::router(app.state.clone());
    let job_uri = format!("/jobs/{job}");
    let refused = app.client(&jobs, &dentist).get(&job_uri).await;
    assert!(!refused.body.to_string().contains("result"));
    assert_eq!(
        refused.problem(403)["detail"],
        "A dentist may not read a job of kind report.insurance."
    );
    for reader in [&token, &admin] {
        let readable = app.client(&jobs, reader).get(&job_uri).await;
        assert_eq!(readable.status, 200, "{}", readable.body);
        assert_eq!(readable.body["kind"], "report.insurance");
    }
}

#[tokio::test]
async fn a_long_history_runs_over_several_numbered_pages() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Admin);
    let client = app.client(&router, &token);
    let ana = patient(&app, a.id, "Ana", "Ibáñez", None).await;
    let start = at("2025-01-02T09:00:00Z");
    for day in 0..90 {
        let code = if day % 2 == 0 { "REV" } else { "RX" };
        appointment(
            &app,
            &a,
            ana,
            start + TimeDelta::days(day),
            "completed",
            Some(code),
        )
        .await;
    }
    let body = request_body(ana, "2025-01-01", "2025-12-31", "DKV");
    let accepted = request_report(&client, &body, None).await;
    let result = run_job(&app, a.id, job_id(&accepted))
        .await
        .expect("the job succeeds");
    assert_eq!(result["procedures"], 90);
    // 45 × 35 € + 45 × 15 €.
    assert_eq!(result["total_cents"], json!({"EUR": 225_000}));

    let pdf = pdf_of(&client, report_id(&accepted)).await;
    let parsed = ParsedPdf::parse(&pdf.bytes);
    let pages = parsed.pages.len();
    assert_eq!(result["pages"], pages);
    assert!(pages >= 3, "90 rows on {pages} pages");
    for (index, lines) in parsed.pages.iter().enumerate() {
        let footer = format!("Página {} de {pages}", index + 1);
        assert!(lines.contains(&footer), "page {}: {lines:#?}", index + 1);
        // Every page repeats the clinic and the table header.
        assert!(lines.contains(&"Clínica clinic-a".to_string()));
        if index + 1 < pages {
            assert!(lines.contains(&"Procedimiento".to_string()));
        }
    }
    // Every appointment appears exactly once, in order; the total only on the last page.
    let dates: Vec<&str> = parsed
        .all_lines()
        .into_iter()
        .filter(|line| line.len() == 10 && line.as_bytes()[2] == b'/' && line.ends_with("/2025"))
        .collect();
    let expected: Vec<String> = (0..90)
        .map(|day| {
            (NaiveDate::from_ymd_opt(2025, 1, 2).expect("date") + TimeDelta::days(day))
                .format("%d/%m/%Y")
                .to_string()
        })
        .collect();
    assert_eq!(dates, expected);
    let last = &parsed.pages[pages - 1];
    assert!(last.contains(&"2.250,00 €".to_string()), "{last:#?}");
    assert!(!parsed.pages[0].contains(&"2.250,00 €".to_string()));
}

#[tokio::test]
async fn an_empty_period_gives_a_one_page_pdf_that_says_so() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let client = app.client(&router, &token);
    let luis = patient(&app, a.id, "Luis", "Gómez", Some("X1234567L")).await;
    appointment(
        &app,
        &a,
        luis,
        at("2025-06-10T08:00:00Z"),
        "completed",
        Some("REV"),
    )
    .await;

    let body = request_body(luis, "2025-01-01", "2025-01-31", "MAPFRE");
    let accepted = request_report(&client, &body, None).await;
    let result = run_job(&app, a.id, job_id(&accepted))
        .await
        .expect("the job succeeds");
    assert_eq!(result["procedures"], 0);
    assert_eq!(result["total_cents"], json!({}));

    let pdf = pdf_of(&client, report_id(&accepted)).await;
    let parsed = ParsedPdf::parse(&pdf.bytes);
    assert_eq!(parsed.pages.len(), 1);
    parsed.assert_has("No constan procedimientos completados de este paciente en el periodo.");
    parsed.assert_has("Total · 0 procedimientos");
    parsed.assert_has("0,00 €");
    parsed.assert_has("Mapfre (MAPFRE)");
    parsed.assert_has("X1234567L");
    parsed.assert_has("Página 1 de 1");
    assert!(!parsed.mentions("Revisión"));
}

#[tokio::test]
async fn bad_requests_are_rejected_with_a_problem_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let client = app.client(&router, &token);
    let maria = patient(&app, a.id, "María", "López", None).await;
    let in_b = patient(&app, app.clinic_b.id, "Berta", "Ruiz", None).await;
    // The clinic does not work with DKV (hidden) and adds an insurer of its own.
    app.put_catalog_item(&a, "insurer", "DKV", &json!({"active": false}))
        .await;
    app.put_catalog_item(&a, "insurer", "LOCAL", &json!({"name": "Mutua Local"}))
        .await;

    let good = request_body(maria, "2025-01-01", "2025-03-31", "SANITAS");
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = good.clone();
        body.as_object_mut().expect("object").remove(field);
        body
    };
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        ("month without zero", with("from", json!("2025-1-01")), 422, Some("from")),
        ("not a date", with("to", json!("end of March")), 422, Some("to")),
        ("impossible date", with("to", json!("2025-02-30")), 422, Some("to")),
        ("a time, not a date", with("from", json!("2025-01-01T00:00:00Z")), 422, Some("from")),
        ("date as a number", with("from", json!(20250101)), 422, Some("from")),
        ("to before from", with("to", json!("2024-12-31")), 422, Some("to")),
        ("a year and a day", with("to", json!("2026-01-01")), 422, Some("to")),
        ("last century", with("from", json!("1999-12-01")), 422, Some("from")),
        ("unknown insurer", with("insurer", json!("NOPE")), 422, Some("insurer")),
        ("hidden insurer", with("insurer", json!("DKV")), 422, Some("insurer")),
        ("a procedure is no insurer", with("insurer", json!("REV")), 422, Some("insurer")),
        ("malformed insurer", with("insurer", json!("SAN ITAS")), 422, Some("insurer")),
        ("empty insurer", with("insurer", json!("")), 422, Some("insurer")),
        ("insurer as a number", with("insurer", json!(7)), 422, Some("insurer")),
        ("missing insurer", without("insurer"), 422, Some("insurer")),
        ("missing from", without("from"), 422, Some("from")),
        ("missing patient", without("patient_id"), 422, Some("patient_id")),
        ("patient not a uuid", with("patient_id", json!("maria")), 422, Some("patient_id")),
        ("unknown field", with("notes", json!("urgente")), 422, Some("notes")),
        ("another clinic's patient", with("patient_id", json!(in_b)), 404, None),
        ("no such patient", with("patient_id", json!(PatientId::new_random())), 404, None),
    ];
    for (case, body, status, field) in cases {
        let response = send(
            &client,
            Method::POST,
            "/reports/insurance",
            Some(&body),
            None,
        )
        .await;
        let problem = response.problem(status);
        assert_eq!(problem["field"].as_str(), field, "{case}: {problem}");
    }

    // The clinic's own insurer is accepted (and creates the only report of this test later).
    let malformed = [
        (Some("application/json"), "{\"patient_id\": ", 400, None),
        (Some("text/plain"), "{}", 415, None),
        (None, "{}", 415, None),
    ];
    for (content_type, raw, status, field) in malformed {
        let response = client
            .send_bytes(Method::POST, "/reports/insurance", content_type, raw)
            .await;
        assert_eq!(response.problem(status)["field"].as_str(), field);
    }
    let bad_key = send(
        &client,
        Method::POST,
        "/reports/insurance",
        Some(&good),
        Some("has space"),
    )
    .await;
    assert_eq!(bad_key.problem(400)["field"], "Idempotency-Key");
    let dentist = send(
        &app.client(&router, &app.token(&a, Role::Dentist)),
        Method::POST,
        "/reports/insurance",
        Some(&good),
        None,
    )
    .await;
    dentist.problem(403);
    let anonymous = send(
        &app.anonymous(&router),
        Method::POST,
        "/reports/insurance",
        Some(&good),
        None,
    )
    .await;
    anonymous.problem(401);

    assert_eq!(app.count("reports", a.id).await, 0);
    assert_eq!(app.count("jobs", a.id).await, 0);

    let local = request_body(maria, "2025-01-01", "2025-03-31", "LOCAL");
    request_report(&client, &local, None).await;
    assert_eq!(app.count("reports", a.id).await, 1);
    assert_eq!(app.count("jobs", a.id).await, 1);
}

#[tokio::test]
async fn an_idempotency_key_repeat_returns_the_same_report_and_job() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let client = app.client(&router, &token);
    let maria = patient(&app, a.id, "María", "López", None).await;
    let body = request_body(maria, "2025-01-01", "2025-03-31", "ADESLAS");

    let first = request_report(&client, &body, Some("report-2025-q1")).await;
    // Another receptionist's client retries the same request (same key, same body).
    let other_receptionist = app.token(&a, Role::Admin);
    let as_other_receptionist = app.client(&router, &other_receptionist);
    let repeat = send(
        &as_other_receptionist,
        Method::POST,
        "/reports/insurance",
        Some(&body),
        Some("report-2025-q1"),
    )
    .await;
    assert_eq!(header(&repeat, "idempotent-replayed"), Some("true"));
    assert_eq!(repeat.status, StatusCode::ACCEPTED, "{}", repeat.body);
    assert_eq!(repeat.body, first);
    assert_eq!(app.count("reports", a.id).await, 1);
    assert_eq!(app.count("jobs", a.id).await, 1);

    // The same key for a different report is refused, and writes nothing.
    let different = request_body(maria, "2025-04-01", "2025-06-30", "ADESLAS");
    let refused = send(
        &client,
        Method::POST,
        "/reports/insurance",
        Some(&different),
        Some("report-2025-q1"),
    )
    .await;
    assert_eq!(refused.problem(422)["field"], "Idempotency-Key");
    assert_eq!(app.count("reports", a.id).await, 1);
    assert_eq!(app.count("jobs", a.id).await, 1);

    // Once built, a repeat says so.
    run_job(&app, a.id, job_id(&first))
        .await
        .expect("the job succeeds");
    let later = request_report(&client, &body, Some("report-2025-q1")).await;
    assert_eq!(later["report_id"], first["report_id"]);
    assert_eq!(later["job_id"], first["job_id"]);
    assert_eq!(later["status"], "ready");
    assert_eq!(
        later["links"]["pdf"],
        format!("/reports/{}/pdf", report_id(&first))
    );

    // Keys are per clinic; without a key every request is a new report.
    let b = app.clinic_b;
    let berta = patient(&app, b.id, "Berta", "Ruiz", None).await;
    let in_b = request_report(
        &app.client(&router, &app.token(&b, Role::Receptionist)),
        &request_body(berta, "2025-01-01", "2025-03-31", "ADESLAS"),
        Some("report-2025-q1"),
    )
    .await;
    assert_ne!(in_b["report_id"], first["report_id"]);
    let second = request_report(&client, &body, None).await;
    let third = request_report(&client, &body, None).await;
    assert_ne!(second["report_id"], third["report_id"]);
    assert_eq!(app.count("reports", a.id).await, 3);
    assert_eq!(app.count("reports", b.id).await, 1);
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_report() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let client = app.client(&router, &token);
    let maria = patient(&app, a.id, "María", "López", None).await;
    let body = request_body(maria, "2025-01-01", "2025-03-31", "ASISA");
    let post = || {
        send(
            &client,
            Method::POST,
            "/reports/insurance",
            Some(&body),
            Some("double-click"),
        )
    };
    let (one, two, three, four) = tokio::join!(post(), post(), post(), post());
    let responses = [one, two, three, four];
    let mut ids = Vec::new();
    for response in responses {
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        ids.push((
            response.body["report_id"].clone(),
            response.body["job_id"].clone(),
        ));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.count("reports", a.id).await, 1);
    assert_eq!(app.count("jobs", a.id).await, 1);
}

#[tokio::test]
async fn another_clinics_report_is_not_found_anywhere() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let b = app.clinic_b;
    let maria = patient(&app, a.id, "María", "López", None).await;
    let accepted = request_report(
        &app.client(&router, &app.token(&a, Role::Receptionist)),
        &request_body(maria, "2025-01-01", "2025-03-31", "SANITAS"),
        None,
    )
    .await;
    let id = report_id(&accepted);
    run_job(&app, a.id, job_id(&accepted))
        .await
        .expect("the job succeeds");

    let token_b = app.token(&b, Role::Admin);
    let as_token_b = app.client(&router, &token_b);
    for uri in [
        format!("/reports/{id}"),
        format!("/reports/{id}/pdf"),
        format!("/reports/{}", ReportId::new_random()),
        format!("/reports/{}/pdf", ReportId::new_random()),
    ] {
        let response = as_token_b.get(&uri).await;
        assert_eq!(
            response.problem(404)["type"],
            "/problems/not-found",
            "{uri}"
        );
    }
    let response = as_token_b.get("/reports/not-a-uuid").await;
    assert_eq!(response.problem(400)["field"], "id");

    // A job can only build a report of its own clinic: clinic B's job naming A's report fails
    // for good and touches nothing.
    let mut forged = job(&app, a.id, job_id(&accepted), 1).await;
    forged.clinic = b.id;
    let failure = shared::reports::build_insurance_report(app.state.clone(), forged)
        .await
        .expect_err("another clinic's report");
    assert!(matches!(failure, JobFailure::Permanent(_)), "{failure:?}");
    let ready = show(&app.client(&router, &app.token(&a, Role::Admin)), id).await;
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn a_job_that_cannot_finish_leaves_the_report_pending_until_its_last_attempt() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let client = app.client(&router, &token);
    let maria = patient(&app, a.id, "María", "López", None).await;
    let accepted = request_report(
        &client,
        &request_body(maria, "2025-01-01", "2025-03-31", "SANITAS"),
        None,
    )
    .await;
    let id = report_id(&accepted);
    let job_id = job_id(&accepted);

    // A clinic time zone PostgreSQL does not know makes the data query fail: worth a retry.
    let set_timezone = |zone: &'static str| {
        let app = &app;
        async move {
            let mut tx = app.owner_tx(a.id).await;
            sqlx::query("UPDATE clinics SET timezone = $2 WHERE id = $1")
                .bind(a.id)
                .bind(zone)
                .execute(&mut *tx)
                .await
                .expect("set the clinic's time zone");
            tx.commit().await.expect("commit");
        }
    };
    set_timezone("Mars/Olympus_Mons").await;
    let first = shared::reports::build_insurance_report(
        app.state.clone(),
        job(&app, a.id, job_id, 1).await,
    )
    .await
    .expect_err("the time zone is unknown");
    assert!(matches!(first, JobFailure::Retry(_)), "{first:?}");
    assert_eq!(show(&client, id).await["status"], "pending");

    let last = shared::reports::build_insurance_report(
        app.state.clone(),
        job(&app, a.id, job_id, 3).await,
    )
    .await
    .expect_err("still unknown");
    assert!(matches!(last, JobFailure::Retry(_)), "{last:?}");
    let failed = show(&client, id).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(failed["links"]["pdf"], Value::Null);
    let pdf = download(&client, id).await;
    assert_eq!(pdf.problem(409)["type"], "/problems/report-failed");

    // An admin replays the dead job once the clinic is fixed: the report is built after all.
    set_timezone("Europe/Madrid").await;
    run_job(&app, a.id, job_id)
        .await
        .expect("the replay succeeds");
    let ready = show(&client, id).await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["error"], Value::Null);
    pdf_of(&client, id).await;
}

#[tokio::test]
async fn a_report_whose_job_died_without_a_word_reads_as_failed() {
    let app = TestApp::spawn().await;
    let router = router(&app);
    let a = app.clinic_a;
    let token = app.token(&a, Role::Receptionist);
    let client = app.client(&router, &token);
    let maria = patient(&app, a.id, "María", "López", None).await;
    let accepted = request_report(
        &client,
        &request_body(maria, "2025-01-01", "2025-03-31", "SANITAS"),
        None,
    )
    .await;
    let id = report_id(&accepted);
    // The worker running the last attempt vanished: the queue's reaper buried the job, and the
    // handler never had the chance to mark the report.
    let mut tx = app.owner_tx(a.id).await;
    sqlx::query(
        "UPDATE jobs SET status = 'dead', finished_at = now(),
                         last_error = 'the worker running the last attempt stopped'
          WHERE clinic_id = $1 AND id = $2",
    )
    .bind(a.id)
    .bind(job_id(&accepted))
    .execute(&mut *tx)
    .await
    .expect("bury the job");
    tx.commit().await.expect("commit");

    let failed = show(&client, id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        "the worker running the last attempt stopped"
    );
    assert!(failed["completed_at"].is_string());
    let pdf = download(&client, id).await;
    assert_eq!(pdf.problem(409)["type"], "/problems/report-failed");

    // The admin's replay runs the handler again, which builds it.
    run_job(&app, a.id, job_id(&accepted))
        .await
        .expect("the replay succeeds");
    assert_eq!(show(&client, id).await["status"], "ready");
}

#[tokio::test]
async fn a_job_without_a_report_fails_for_good() {
    let app = TestApp::spawn().await;
    let a = app.clinic_a;
    let job = |payload: Value| Job {
        id: JobId::new_random(),
        clinic: a.id,
        kind: "report.insurance".into(),
        payload,
        attempt: 1,
        max_attempts: 3,
        created_by: None,
    };
    for payload in [
        json!({"report_id": ReportId::new_random()}),
        json!({"report_id": "nope"}),
        json!({}),
    ] {
        let failure = shared::reports::build_insurance_report(app.state.clone(), job(payload))
            .await
            .expect_err("nothing to build");
        assert!(matches!(failure, JobFailure::Permanent(_)), "{failure:?}");
    }
}

#[test]
fn the_worker_runs_insurance_report_jobs() {
    assert_eq!(
        shared::reports::REPORT_INSURANCE.as_str(),
        "report.insurance"
    );
    assert!(
        shared::worker::handlers()
            .kinds()
            .any(|kind| kind == "report.insurance")
    );
}
