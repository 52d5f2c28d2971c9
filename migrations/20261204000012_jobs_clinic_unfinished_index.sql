-- A clinic's unfinished jobs, counted on every enqueue against QUEUE_MAX_PENDING_PER_CLINIC
-- (`shared::queue::repository::pending_over`). Partial, like jobs_unfinished_idx: the count reads
-- only queued, running and failed entries, never the clinic's history of succeeded jobs (which
-- jobs_clinic_status_idx would make it walk: its status column comes after clinic_id, but an IN
-- list of three statuses is applied there as a filter).
CREATE INDEX jobs_clinic_unfinished_idx ON jobs (clinic_id)
    WHERE status IN ('queued', 'running', 'failed');
