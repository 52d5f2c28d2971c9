-- The daily upload quota counts a clinic's X-rays since its local midnight on every upload:
-- this index answers that from the clinic's newest rows, not from every X-ray it ever stored.
CREATE INDEX xrays_clinic_created_idx ON xrays (clinic_id, created_at);
