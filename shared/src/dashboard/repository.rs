//! Dashboard SQL: every figure in one statement, so a miss costs one round trip.
//!
//! Runs inside a tenant transaction (row-level security) and filters on `clinic_id` itself.
//! Plan on a clinic with 200,000 appointments (the migration 20261123000005; measured in
//! tests/benches/README.md):
//! - `week`: one index-only range scan of `appointments_clinic_starts_load_idx` over the next
//!   seven days (today's counts by status come from the same rows);
//! - `closed`: one index-only range scan of the partial `appointments_clinic_closed_idx`
//!   (completed and no-show rows only) over the last 30 days or the month, whichever starts
//!   earlier, feeding both the no-show rate and the revenue;
//! - `new_patients`: an index-only range scan of `patients_clinic_created_idx`;
//! - prices: a handful of catalog lookups, one per procedure code completed this month.
//!
//! Statuses are never an index condition: `enum_eq` is not leakproof, so under row-level
//! security PostgreSQL may only apply it after the policy, as a filter. The partial index puts
//! the status test in the index predicate instead, where it costs nothing per row.
//!
//! The day boundaries are the clinic's: PostgreSQL turns local midnights into instants with
//! `AT TIME ZONE`, daylight-saving days included, and `width_bucket` assigns each appointment
//! to its local day by comparing instants (cheaper than converting every row).

use super::types::FiguresRow;
use crate::ids::ClinicId;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

const FIGURES: &str = r#"
WITH bounds AS (
    SELECT c.timezone,
           d.today,
           d.today::timestamp AT TIME ZONE c.timezone AS today_start,
           (d.today + 7)::timestamp AT TIME ZONE c.timezone AS week_end,
           -- The starts of days 1..6: width_bucket() puts today in bucket 0, day n in bucket n.
           array(SELECT (d.today + n)::timestamp AT TIME ZONE c.timezone
                   FROM generate_series(1, 6) AS n) AS day_starts,
           date_trunc('month', d.today::timestamp) AT TIME ZONE c.timezone AS month_start,
           (date_trunc('month', d.today::timestamp) + interval '1 month')
               AT TIME ZONE c.timezone AS month_end,
           $2::timestamptz - interval '30 days' AS closed_since
      FROM clinics c
     CROSS JOIN LATERAL (SELECT ($2::timestamptz AT TIME ZONE c.timezone)::date AS today) AS d
     WHERE c.id = $1
),
week AS (
    SELECT a.dentist_id,
           width_bucket(a.starts_at, b.day_starts) AS day,
           a.status,
           count(*) AS appointments,
           sum(a.ends_at - a.starts_at) AS booked
      FROM bounds b
      JOIN appointments a
        ON a.clinic_id = $1 AND a.starts_at >= b.today_start AND a.starts_at < b.week_end
     GROUP BY 1, 2, 3
),
load AS (
    SELECT dentist_id, day,
           sum(appointments)::bigint AS appointments,
           (extract(epoch FROM sum(booked)) / 60)::bigint AS booked_minutes
      FROM week
     WHERE status <> 'cancelled'
     GROUP BY 1, 2
),
today AS (
    SELECT status::text AS status, sum(appointments)::bigint AS appointments
      FROM week
     WHERE day = 0
     GROUP BY 1
),
closed AS (
    SELECT a.procedure_code,
           count(*) FILTER (WHERE a.status = 'completed' AND a.starts_at >= b.month_start)
               AS completed_this_month,
           count(*) FILTER (WHERE a.status = 'no_show'
                              AND a.starts_at >= b.closed_since AND a.starts_at < $2)
               AS no_shows,
           count(*) FILTER (WHERE a.starts_at >= b.closed_since AND a.starts_at < $2) AS closed
      FROM bounds b
      JOIN appointments a
        ON a.clinic_id = $1
       AND a.status IN ('completed', 'no_show')
       AND a.starts_at >= least(b.month_start, b.closed_since)
       AND a.starts_at < greatest(b.month_end, $2)
     GROUP BY a.procedure_code
),
prices AS (
    -- The clinic's override wins when it sets a price; its currency goes with its price.
    SELECT c.completed_this_month AS appointments,
           COALESCE(o.price_cents, g.price_cents) AS price_cents,
           CASE WHEN o.price_cents IS NOT NULL THEN o.currency ELSE g.currency END AS currency
      FROM closed c
      LEFT JOIN catalog_items g
             ON g.clinic_id IS NULL AND g.kind = 'procedure' AND g.code = c.procedure_code
      LEFT JOIN catalog_items o
             ON o.clinic_id = $1 AND o.kind = 'procedure' AND o.code = c.procedure_code
     WHERE c.completed_this_month > 0
),
dentists AS (
    SELECT u.id, u.full_name
      FROM memberships m JOIN users u ON u.id = m.user_id
     WHERE m.clinic_id = $1
       AND ((m.role = 'dentist' AND m.active) OR m.user_id IN (SELECT dentist_id FROM load))
),
new_patients AS (
    SELECT count(*) FILTER (WHERE p.created_at >= $2::timestamptz - interval '7 days')
               AS last_7_days,
           count(*) AS last_30_days
      FROM patients p
     WHERE p.clinic_id = $1
       AND p.archived_at IS NULL
       AND p.created_at >= $2::timestamptz - interval '30 days'
       AND p.created_at <= $2
)
SELECT b.timezone,
       b.today,
       (SELECT COALESCE(array_agg(status), '{}') FROM today) AS today_statuses,
       (SELECT COALESCE(array_agg(appointments), '{}') FROM today) AS today_counts,
       (SELECT COALESCE(array_agg(id ORDER BY full_name, id), '{}') FROM dentists) AS dentist_ids,
       (SELECT COALESCE(array_agg(full_name ORDER BY full_name, id), '{}') FROM dentists)
           AS dentist_names,
       (SELECT COALESCE(array_agg(dentist_id), '{}') FROM load) AS load_dentists,
       (SELECT COALESCE(array_agg(day), '{}') FROM load) AS load_days,
       (SELECT COALESCE(array_agg(appointments), '{}') FROM load) AS load_appointments,
       (SELECT COALESCE(array_agg(booked_minutes), '{}') FROM load) AS load_minutes,
       (SELECT COALESCE(sum(no_shows), 0)::bigint FROM closed) AS no_shows,
       (SELECT COALESCE(sum(closed), 0)::bigint FROM closed) AS closed,
       n.last_7_days AS new_patients_7_days,
       n.last_30_days AS new_patients_30_days,
       (SELECT COALESCE(array_agg(appointments), '{}') FROM prices) AS revenue_appointments,
       (SELECT COALESCE(array_agg(price_cents), '{}') FROM prices) AS revenue_prices,
       (SELECT COALESCE(array_agg(currency), '{}') FROM prices) AS revenue_currencies
  FROM bounds b, new_patients n
"#;

/// The clinic's figures as of `now`; `None` when the clinic does not exist (or is not the
/// transaction's).
pub(super) async fn figures(
    conn: &mut PgConnection,
    clinic: ClinicId,
    now: DateTime<Utc>,
) -> Result<Option<FiguresRow>, sqlx::Error> {
    sqlx::query_as(FIGURES)
        .bind(clinic)
        .bind(now)
        .fetch_optional(conn)
        .await
}
