//! The demo's tools (`pulso-devtool`): `seed --reset` removes every row of the demo clinics,
//! whichever table holds it, so a rebuilt demo starts from nothing.

use pulso_devtool::seed::{TENANT_TABLES, reset_clinics};
use pulso_tests::TestApp;

/// Tables with a `clinic_id` that the reset deliberately leaves alone, each with its reason.
const KEPT: &[&str] = &[];

#[tokio::test]
async fn the_reset_lists_every_table_that_holds_clinic_rows() {
    let app = TestApp::spawn().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.table_name::text
           FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_schema, table_name)
          WHERE c.table_schema = 'public' AND c.column_name = 'clinic_id'
            AND t.table_type = 'BASE TABLE'
          ORDER BY 1",
    )
    .fetch_all(&app.owner)
    .await
    .unwrap();
    assert!(tables.len() > 10, "{tables:?}");
    let missing: Vec<&String> = tables
        .iter()
        .filter(|table| !TENANT_TABLES.contains(&table.as_str()) && !KEPT.contains(&table.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "add these tables to seed::TENANT_TABLES: {missing:?}"
    );
}

#[tokio::test]
async fn the_reset_deletes_a_clinic_with_an_open_upload() {
    let app = TestApp::spawn().await;
    let clinic = app.clinic_a.id;
    let patient = app.seed_patient(clinic, "Lucía").await;
    let other = app.seed_patient(app.clinic_b.id, "Marta").await;
    let mut tx = app.owner_tx(clinic).await;
    sqlx::query(
        "INSERT INTO xray_uploads (id, clinic_id, patient_id, byte_size, sha256, expires_at)
         VALUES (gen_random_uuid(), $1, $2, 10, sha256('x'), now() + interval '5 minutes')",
    )
    .bind(clinic)
    .bind(patient)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let deleted = reset_clinics(&app.owner, &[clinic.0]).await.unwrap();
    assert!(deleted >= 2, "deleted {deleted}");
    for table in ["xray_uploads", "patients", "memberships"] {
        assert_eq!(app.count(table, clinic).await, 0, "{table}");
    }
    // The other clinic keeps what is its own.
    assert_eq!(app.count("patients", app.clinic_b.id).await, 1, "{other}");
    let clinics: i64 = sqlx::query_scalar("SELECT count(*) FROM clinics WHERE id = $1")
        .bind(clinic)
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(clinics, 0);
}
