-- The media upkeep (issue 16 §3, `shared::scheduler::media`): every ten minutes each clinic is
-- asked whether it still holds files in PostgreSQL (rows made before media moved to S3) or
-- uploads left open after their presigned PUT expired. These partial indexes answer that with
-- one probe each and are empty once a clinic's files have moved and its uploads are settled,
-- so a thousand clinics cost a thousand empty index probes. Partial, because under row-level
-- security a predicate on the row is applied after the policy and never as an index condition,
-- while a partial index's own predicate is used. Plain CREATE INDEX: the migration runs in a
-- transaction, and the held rows are the few of a deployment made before S3 (the index holds
-- ids, not bytes).
CREATE INDEX xrays_held_idx ON xrays (clinic_id, id)
    WHERE image IS NOT NULL OR thumbnail IS NOT NULL;
CREATE INDEX reports_held_idx ON reports (clinic_id, id) WHERE pdf IS NOT NULL;
CREATE INDEX xray_uploads_open_idx ON xray_uploads (clinic_id, expires_at)
    WHERE status = 'open';
