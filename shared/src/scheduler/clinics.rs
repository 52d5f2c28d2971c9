//! The clinics scheduled work is done for, read across tenants by pulso_system and cached.
//!
//! "Active" means not archived. Narrowing it further (say, clinics with appointments in the last
//! or next few days) would need pulso_system to read every clinic's appointments, which its
//! policy deliberately does not allow; and an idle clinic's dashboard costs a few index probes
//! once per refresh cycle. The list is cached for a day (`CLINIC_LIST`): a clinic created or
//! archived since is picked up by the next load (whoever adds clinic creation or archiving
//! invalidates `Keys::clinic_list`), and its dashboard meanwhile works on demand.

use crate::cache::CLINIC_LIST;
use crate::db::DbError;
use crate::ids::ClinicId;
use crate::state::AppState;
use futures_util::StreamExt;
use std::future::Future;
use tokio::time::Instant;

/// Every clinic that is not archived, by id. Needs a pool connected as pulso_system: under the
/// application role the query sees no clinic at all (row-level security), which would look like
/// an empty platform rather than a misconfiguration, so an empty answer is logged.
pub async fn active_clinics(state: &AppState) -> Result<Vec<ClinicId>, DbError> {
    let key = state.keys.clinic_list();
    let clinics = state
        .cache
        .get_or_load(CLINIC_LIST, &key, || async {
            let clinics: Vec<ClinicId> =
                sqlx::query_scalar("SELECT id FROM clinics WHERE archived_at IS NULL ORDER BY id")
                    .fetch_all(&state.db)
                    .await
                    .map_err(DbError::from)?;
            if clinics.is_empty() {
                tracing::warn!(
                    "no active clinic is visible: does SYSTEM_DATABASE_URL connect as pulso_system?"
                );
            }
            Ok::<_, DbError>(Some(clinics))
        })
        .await?;
    Ok(clinics.unwrap_or_default())
}

/// Runs `work` for each of `clinics`, `concurrency` at a time, in no particular order; a clinic
/// whose turn comes after `stop_at` is not started and answers `None` (counted as out of time).
pub async fn for_each_clinic<T, Work, Done>(
    clinics: &[ClinicId],
    concurrency: usize,
    stop_at: Instant,
    work: Work,
) -> Vec<Option<T>>
where
    Work: Fn(ClinicId) -> Done,
    Done: Future<Output = T>,
{
    futures_util::stream::iter(clinics.iter().copied())
        .map(|clinic| {
            let work = &work;
            async move {
                if Instant::now() >= stop_at {
                    return None;
                }
                Some(work(clinic).await)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}
