-- Media in object storage (issue 16 §3): an X-ray's image and thumbnail live in S3
-- (`shared::media`), the row keeps their keys. Rows written before keep their bytes in `image`
-- and `thumbnail` until the media migration job moves them; a row has its image in one place or
-- the other, never in neither.
ALTER TABLE xrays ALTER COLUMN image DROP NOT NULL;
ALTER TABLE xrays
    ADD COLUMN image_key text
        CHECK (image_key ~ '^clinics/[0-9a-f-]{36}/xrays/[0-9a-f-]{36}/image$'),
    ADD COLUMN thumbnail_key text
        CHECK (thumbnail_key ~ '^clinics/[0-9a-f-]{36}/xrays/[0-9a-f-]{36}/thumbnail\.jpg$'),
    -- The thumbnail's ETag without reading it back from S3.
    ADD COLUMN thumbnail_sha256 bytea CHECK (length(thumbnail_sha256) = 32),
    ADD CONSTRAINT xrays_image_stored CHECK (image IS NOT NULL OR image_key IS NOT NULL),
    ADD CONSTRAINT xrays_thumbnail_digest
        CHECK (thumbnail_key IS NULL OR thumbnail_sha256 IS NOT NULL);

-- An upload by presigned URL: the browser PUTs the file straight to S3 under
-- `uploads/{clinic}/{id}`; completing it (the client's call, or S3's "Object Created" event)
-- checks the file and turns it into the X-ray of the same id. `open` until then; `rejected`
-- with the reason when the file is not an acceptable X-ray (it is deleted).
CREATE TYPE upload_status AS ENUM ('open', 'accepted', 'rejected');

CREATE TABLE xray_uploads (
    id           uuid PRIMARY KEY,
    clinic_id    uuid NOT NULL REFERENCES clinics (id),
    patient_id   uuid NOT NULL,
    created_by   uuid,
    -- What the uploader announced, signed into the presigned PUT.
    byte_size    bigint NOT NULL CHECK (byte_size > 0),
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    status       upload_status NOT NULL DEFAULT 'open',
    job_id       uuid,
    error        text CHECK (length(error) <= 4000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- The presigned PUT's end; the object may still be completed after it, until the bucket's
    -- lifecycle rule removes it.
    expires_at   timestamptz NOT NULL,
    completed_at timestamptz,
    CONSTRAINT xray_uploads_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT xray_uploads_patient_fkey FOREIGN KEY (clinic_id, patient_id)
        REFERENCES patients (clinic_id, id),
    CONSTRAINT xray_uploads_job_fkey FOREIGN KEY (clinic_id, job_id) REFERENCES jobs (clinic_id, id),
    CONSTRAINT xray_uploads_accepted CHECK ((status = 'accepted') = (job_id IS NOT NULL))
);

ALTER TABLE xray_uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE xray_uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY xray_uploads_tenant ON xray_uploads
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

GRANT SELECT, INSERT, UPDATE ON xray_uploads TO pulso_app;
