-- Messages to patients (issue 15) need phone numbers in E.164, and a number typed without its
-- country code is read in the clinic's country: ISO 3166-1 alpha-2, `ES` unless said otherwise
-- (Pulso's first market; a clinic is onboarded with the country of its locale, and its admin
-- may change it). Existing clinics take the region of their locale (`en-GB` → `GB`).
ALTER TABLE clinics ADD COLUMN country text NOT NULL DEFAULT 'ES' CHECK (country ~ '^[A-Z]{2}$');

-- The migrating owner is subject to FORCE ROW LEVEL SECURITY like everyone: lifted for this
-- one statement and restored before the migration's transaction commits (ALTER TABLE holds its
-- lock until then, so nobody sees it lifted).
ALTER TABLE clinics NO FORCE ROW LEVEL SECURITY;
UPDATE clinics SET country = substring(locale FROM '-([A-Z]{2})$')
 WHERE locale ~ '-[A-Z]{2}$';
ALTER TABLE clinics FORCE ROW LEVEL SECURITY;
