//! The `admin` function: what a clinic's admins (and Pulso's platform admins) need to run the
//! platform — the cache view: counters per cache, Redis facts, and invalidation by scope; and the
//! job queue's view: figures, jobs by status (the dead-letter queue), replay; and announcements to
//! the clinic (or, for platform admins, to every clinic), pushed live.

mod announcements;
mod cache_view;
mod jobs_view;
mod routes;

pub use announcements::{Announcement, AnnouncementBody, AnnouncementResponse, announce};
pub use cache_view::{CacheStatsResponse, InvalidateBody, InvalidateRequest};
pub use jobs_view::{QueueStatsResponse, RedisQueueView};
pub use routes::{router, routes};

use crate::auth::Role;

/// Who may use the admin routes (the routes and the views they call check it alike).
const ADMINS: &[Role] = &[Role::Admin];
