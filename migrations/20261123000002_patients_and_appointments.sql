-- Patients and appointments: the reception desk's day.

CREATE TABLE patients (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id    uuid NOT NULL REFERENCES clinics (id),
    first_name   text NOT NULL CHECK (length(first_name) BETWEEN 1 AND 100),
    last_name    text NOT NULL CHECK (length(last_name) BETWEEN 1 AND 100),
    -- Lower-cased, accent-free "first last", computed by the application (Spanish names carry
    -- accents that reception does not type), so name search is a plain indexed comparison.
    search_name  text NOT NULL,
    phone        text CHECK (phone ~ '^\+?[0-9]{6,15}$'),
    email        text CHECK (email = lower(email) AND position('@' IN email) > 1),
    birth_date   date CHECK (birth_date >= DATE '1900-01-01'),
    national_id  text CHECK (length(national_id) BETWEEN 1 AND 32),
    -- Clinical text: never logged, never part of a cache key or an error body.
    notes        text NOT NULL DEFAULT '' CHECK (length(notes) <= 10000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    archived_at  timestamptz,
    CONSTRAINT patients_clinic_id_id_key UNIQUE (clinic_id, id)
);
-- Listing and name search (prefix and keyset pagination on (search_name, id)).
CREATE INDEX patients_clinic_search_idx ON patients (clinic_id, search_name text_pattern_ops, id);
CREATE INDEX patients_clinic_name_order_idx ON patients (clinic_id, search_name, id);
-- Phone search by prefix.
CREATE INDEX patients_clinic_phone_idx ON patients (clinic_id, phone text_pattern_ops) WHERE phone IS NOT NULL;
-- One living record per national id in a clinic; archived records keep theirs.
CREATE UNIQUE INDEX patients_clinic_national_id_key ON patients (clinic_id, national_id)
    WHERE national_id IS NOT NULL AND archived_at IS NULL;

CREATE TYPE appointment_status AS ENUM ('scheduled', 'confirmed', 'completed', 'cancelled', 'no_show');

CREATE TABLE appointments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id       uuid NOT NULL REFERENCES clinics (id),
    patient_id      uuid NOT NULL,
    dentist_id      uuid NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    status          appointment_status NOT NULL DEFAULT 'scheduled',
    reason          text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    procedure_code  text CHECK (length(procedure_code) BETWEEN 1 AND 32),
    created_by      uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT appointments_patient_fkey FOREIGN KEY (clinic_id, patient_id) REFERENCES patients (clinic_id, id),
    CONSTRAINT appointments_dentist_fkey FOREIGN KEY (clinic_id, dentist_id) REFERENCES users (clinic_id, id),
    CONSTRAINT appointments_ends_after_start CHECK (ends_at > starts_at),
    CONSTRAINT appointments_at_most_12_hours CHECK (ends_at - starts_at <= interval '12 hours'),
    -- A dentist is never booked twice for the same minute; cancelled slots free the time.
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        clinic_id WITH =,
        dentist_id WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status <> 'cancelled')
);
CREATE INDEX appointments_clinic_starts_idx ON appointments (clinic_id, starts_at, id);
CREATE INDEX appointments_clinic_dentist_starts_idx ON appointments (clinic_id, dentist_id, starts_at);
CREATE INDEX appointments_clinic_patient_starts_idx ON appointments (clinic_id, patient_id, starts_at);

ALTER TABLE patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE patients FORCE ROW LEVEL SECURITY;
CREATE POLICY patients_tenant ON patients
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

ALTER TABLE appointments ENABLE ROW LEVEL SECURITY;
ALTER TABLE appointments FORCE ROW LEVEL SECURITY;
CREATE POLICY appointments_tenant ON appointments
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

-- Patients are archived, never deleted, so the app role has no DELETE here.
GRANT SELECT, INSERT, UPDATE ON patients, appointments TO pulso_app;
