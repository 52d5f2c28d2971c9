-- The waiting list (issue 14 §4): patients who want an earlier or any appointment, for a
-- procedure and a length, with a preferred dentist or any, within a window of clinic dates.
-- When a cancellation or a reschedule frees time that fits an entry, reception is told over the
-- WebSocket (`waiting_list.match`); nothing is booked by itself. An entry is removed when the
-- patient is booked or no longer waits; the audit trail keeps it.
CREATE TABLE waiting_list (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id        uuid NOT NULL REFERENCES clinics (id),
    patient_id       uuid NOT NULL,
    procedure_code   text CHECK (length(procedure_code) BETWEEN 1 AND 32),
    duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 5 AND 720),
    dentist_id       uuid,
    -- Clinic dates, both included.
    window_from      date NOT NULL,
    window_until     date NOT NULL,
    -- For reception ("mornings only, call first"); never clinical details.
    notes            text NOT NULL DEFAULT '' CHECK (length(notes) <= 500),
    created_by       uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT waiting_list_patient_fkey FOREIGN KEY (clinic_id, patient_id)
        REFERENCES patients (clinic_id, id),
    CONSTRAINT waiting_list_dentist_fkey FOREIGN KEY (clinic_id, dentist_id)
        REFERENCES memberships (clinic_id, user_id),
    CONSTRAINT waiting_list_window CHECK (window_until >= window_from
                                          AND window_until - window_from <= 366)
);
-- Reception's list, first come first served; and the entries a freed slot may fit.
CREATE INDEX waiting_list_clinic_idx ON waiting_list (clinic_id, created_at, id);
CREATE INDEX waiting_list_window_idx ON waiting_list (clinic_id, window_until);

ALTER TABLE waiting_list ENABLE ROW LEVEL SECURITY;
ALTER TABLE waiting_list FORCE ROW LEVEL SECURITY;
CREATE POLICY waiting_list_tenant ON waiting_list
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

GRANT SELECT, INSERT, DELETE ON waiting_list TO pulso_app;
