//! Catalog use cases: the merged view read through the cache, a clinic's overrides, and the
//! platform's changes to the global catalog, each committed before its cache invalidation.

use super::repository;
use super::types::{CatalogCode, CatalogItem, CatalogKind, Incomplete, ItemChanges, MergedRow};
use crate::audit::{self, Action, Actor, Changes, FieldPolicy};
use crate::cache::{CATALOG_VIEW, Cache};
use crate::db::{self, DbError};
use crate::http::ApiError;
use crate::http::conditional::{IfMatch, precondition_holds};
use crate::ids::ClinicId;
use crate::keys::Keys;
use crate::state::AppState;
use crate::text::search_key;
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog item not found")]
    NotFound,
    /// `If-Match` named a version that is no longer current.
    #[error("the catalog item changed since the version in If-Match")]
    PreconditionFailed,
    #[error("incomplete catalog item: {0}")]
    Incomplete(#[from] Incomplete),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CatalogError {
    fn from(error: sqlx::Error) -> Self {
        CatalogError::Db(DbError::from(error))
    }
}

impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NotFound => ApiError::NotFound {
                what: "catalog item",
            },
            CatalogError::PreconditionFailed => ApiError::PreconditionFailed {
                what: "catalog item",
            },
            CatalogError::Incomplete(Incomplete { field, detail }) => {
                ApiError::validation(field, detail)
            }
            CatalogError::Db(error) => error.into(),
        }
    }
}

/// A written item as the writer's clinic now sees it, and whether the write created the row.
#[derive(Debug)]
pub struct SavedItem {
    pub item: CatalogItem,
    pub created: bool,
}

/// A global item's change names the fields that changed (what every clinic sees).
const GLOBAL_AUDIT: FieldPolicy = FieldPolicy {
    ignored: &["source"],
    redacted: &[],
};

pub struct CatalogService<'a> {
    db: &'a PgPool,
    cache: &'a Cache,
    keys: &'a Keys,
}

impl<'a> CatalogService<'a> {
    pub fn new(state: &'a AppState) -> Self {
        Self {
            db: &state.db,
            cache: &state.cache,
            keys: &state.keys,
        }
    }

    /// Every item of `kind` as `clinic` sees it, inactive ones included, read through the cache
    /// (one key per clinic and kind; a global change invalidates all of them at once).
    pub async fn view(
        &self,
        clinic: ClinicId,
        kind: CatalogKind,
    ) -> Result<Vec<CatalogItem>, CatalogError> {
        let key = self.keys.catalog_view(clinic, kind.as_str());
        let view = self
            .cache
            .get_or_load(CATALOG_VIEW, &key, || async {
                let mut tx = db::begin_tenant(self.db, clinic).await?;
                let rows = repository::merged(&mut tx, Some(clinic), kind, None).await?;
                tx.commit().await?;
                Ok::<_, CatalogError>(Some(sorted(rows)))
            })
            .await?;
        // The loader always answers `Some` (an empty catalog is an empty list).
        Ok(view.unwrap_or_default())
    }

    /// One item as `clinic` sees it, inactive or not, from the cached view.
    pub async fn item(
        &self,
        clinic: ClinicId,
        kind: CatalogKind,
        code: &CatalogCode,
    ) -> Result<CatalogItem, CatalogError> {
        self.view(clinic, kind)
            .await?
            .into_iter()
            .find(|item| item.code == code.as_str())
            .ok_or(CatalogError::NotFound)
    }

    /// Creates or changes the clinic's override of a global item, or the clinic's own item
    /// when the code is not in the global catalog; then invalidates the clinic's view of `kind`.
    /// With `if_match`, only while the item as the clinic sees it is still that version.
    pub async fn save_override(
        &self,
        clinic: ClinicId,
        kind: CatalogKind,
        code: &CatalogCode,
        changes: &ItemChanges,
        if_match: Option<&IfMatch>,
    ) -> Result<SavedItem, CatalogError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        let global = repository::find(&mut tx, None, kind, code, false).await?;
        let current = repository::find(&mut tx, Some(clinic), kind, code, true).await?;
        check_precondition(&mut tx, clinic, kind, code, if_match).await?;
        if global.is_none() {
            changes.check_complete(
                kind,
                current.as_ref(),
                "the code is not in the global catalog, so the clinic's item has nothing to \
                 inherit",
            )?;
        }
        let created = repository::upsert(&mut tx, Some(clinic), kind, code, changes).await?;
        let item = merged_item(&mut tx, Some(clinic), kind, code).await?;
        tx.commit().await?;
        self.cache
            .invalidate(CATALOG_VIEW, &self.keys.catalog_view(clinic, kind.as_str()))
            .await;
        Ok(SavedItem { item, created })
    }

    /// Removes the clinic's override (the global item shows again) or its own item.
    pub async fn remove_override(
        &self,
        clinic: ClinicId,
        kind: CatalogKind,
        code: &CatalogCode,
    ) -> Result<(), CatalogError> {
        let mut tx = db::begin_tenant(self.db, clinic).await?;
        if !repository::delete_own(&mut tx, clinic, kind, code).await? {
            return Err(CatalogError::NotFound);
        }
        tx.commit().await?;
        self.cache
            .invalidate(CATALOG_VIEW, &self.keys.catalog_view(clinic, kind.as_str()))
            .await;
        Ok(())
    }

    /// Creates or changes a global item. The caller must have proved the platform-admin claim;
    /// `clinic` is only the caller's own clinic, for the transaction's tenant setting. With
    /// `if_match`, only while the item as that clinic sees it is still that version.
    pub async fn save_global(
        &self,
        clinic: ClinicId,
        kind: CatalogKind,
        code: &CatalogCode,
        changes: &ItemChanges,
        if_match: Option<&IfMatch>,
        actor: &Actor,
    ) -> Result<SavedItem, CatalogError> {
        let mut tx = db::begin_platform(self.db, clinic).await?;
        let current = repository::find(&mut tx, None, kind, code, true).await?;
        let before = match current {
            Some(_) => Some(merged_item(&mut tx, None, kind, code).await?),
            None => None,
        };
        check_precondition(&mut tx, clinic, kind, code, if_match).await?;
        changes.check_complete(
            kind,
            current.as_ref(),
            "a global item has nothing to inherit",
        )?;
        let created = repository::upsert(&mut tx, None, kind, code, changes).await?;
        let item = merged_item(&mut tx, None, kind, code).await?;
        let changed = Changes::between(before.as_ref(), Some(&item), &GLOBAL_AUDIT);
        if !changed.is_empty() {
            let target = format!("{}/{}", kind.as_str(), code.as_str());
            audit::record(
                &mut tx,
                actor,
                None,
                Action::CatalogGlobalSave,
                &target,
                &changed,
            )
            .await?;
        }
        tx.commit().await?;
        self.invalidate_every_clinic().await;
        Ok(SavedItem { item, created })
    }

    /// Retires a global item for every clinic. It is kept, not deleted: clinics' overrides and
    /// past appointments still refer to its code, and `PUT ?scope=global {"active": true}`
    /// brings it back. Retiring a retired item again is a no-op.
    pub async fn retire_global(
        &self,
        clinic: ClinicId,
        kind: CatalogKind,
        code: &CatalogCode,
        actor: &Actor,
    ) -> Result<(), CatalogError> {
        let mut tx = db::begin_platform(self.db, clinic).await?;
        let before = match repository::find(&mut tx, None, kind, code, true).await? {
            Some(_) => Some(merged_item(&mut tx, None, kind, code).await?),
            None => None,
        };
        if !repository::retire_global(&mut tx, kind, code).await? {
            return Err(CatalogError::NotFound);
        }
        let after = merged_item(&mut tx, None, kind, code).await?;
        let changed = Changes::between(before.as_ref(), Some(&after), &GLOBAL_AUDIT);
        if !changed.is_empty() {
            let target = format!("{}/{}", kind.as_str(), code.as_str());
            audit::record(
                &mut tx,
                actor,
                None,
                Action::CatalogGlobalRetire,
                &target,
                &changed,
            )
            .await?;
        }
        tx.commit().await?;
        self.invalidate_every_clinic().await;
        Ok(())
    }

    /// One counter bump makes every clinic's cached view a miss. The write has committed and
    /// stands either way; if Redis is unreachable the views catch up within the catalog TTL.
    async fn invalidate_every_clinic(&self) {
        if let Err(error) = self.cache.invalidate_global_catalog().await {
            tracing::error!(
                %error,
                "global catalog changed but the clinics' cached views could not be invalidated; \
                 they catch up when their TTL ends"
            );
        }
    }
}

/// The one item just written, as its owner sees it (`None`: the global catalog alone).
/// `if_match` against the item as `clinic` sees it (`GET /catalogs/{kind}/{code}`), after the
/// rows it merges were locked.
async fn check_precondition(
    tx: &mut db::TenantTx,
    clinic: ClinicId,
    kind: CatalogKind,
    code: &CatalogCode,
    if_match: Option<&IfMatch>,
) -> Result<(), CatalogError> {
    let shown = match if_match {
        None => None,
        Some(_) => repository::merged(tx, Some(clinic), kind, Some(code))
            .await?
            .pop()
            .map(CatalogItem::from),
    };
    match precondition_holds(if_match, || shown) {
        true => Ok(()),
        false => Err(CatalogError::PreconditionFailed),
    }
}

async fn merged_item(
    tx: &mut db::TenantTx,
    clinic: Option<ClinicId>,
    kind: CatalogKind,
    code: &CatalogCode,
) -> Result<CatalogItem, CatalogError> {
    repository::merged(tx, clinic, kind, Some(code))
        .await?
        .pop()
        .map(CatalogItem::from)
        .ok_or(CatalogError::NotFound)
}

/// Alphabetical as people read it (accents and case folded, so "Ácido" is not after "Zeta"),
/// the code breaking ties.
fn sorted(rows: Vec<MergedRow>) -> Vec<CatalogItem> {
    let mut items: Vec<CatalogItem> = rows.into_iter().map(CatalogItem::from).collect();
    items.sort_by_cached_key(|item| (search_key(&item.name), item.code.clone()));
    items
}
