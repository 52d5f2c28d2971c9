-- The agenda's capacity (`shared::schedule`): when each dentist works at a clinic, when they or
-- the whole clinic are away, and the clinic's treatment rooms (chairs). Booking and rescheduling
-- check an appointment against them in the transaction that writes it.

-- Bookable start times fall on multiples of this many minutes after local midnight.
ALTER TABLE clinics
    ADD COLUMN slot_minutes smallint NOT NULL DEFAULT 15 CHECK (slot_minutes IN (5, 10, 15, 30));

-- A dentist's weekly recurring working interval at a clinic: on ISO `weekday` (1 Monday … 7
-- Sunday), from `start_minute` to `end_minute` after local midnight (clinic time; 1440 is the
-- day's end), on the dates from `valid_from` to `valid_until` (inclusive; NULL: open-ended).
-- Minutes rather than `time`: a day's end (24:00) and whole-minute precision are plain integers,
-- and the no-overlap constraint needs no range type of its own. Several intervals a day (09:00–
-- 14:00 and 16:00–20:00) are several rows; two rows of one dentist never overlap on a day both
-- are valid (touching is fine: 09:00–14:00 and 14:00–20:00 make one stretch).
CREATE TABLE working_hours (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id     uuid NOT NULL REFERENCES clinics (id),
    dentist_id    uuid NOT NULL,
    weekday       smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_minute  smallint NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute    smallint NOT NULL CHECK (end_minute BETWEEN 1 AND 1440),
    valid_from    date NOT NULL,
    valid_until   date,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT working_hours_dentist_fkey FOREIGN KEY (clinic_id, dentist_id)
        REFERENCES memberships (clinic_id, user_id),
    CONSTRAINT working_hours_ends_after_start CHECK (end_minute > start_minute),
    CONSTRAINT working_hours_valid_dates CHECK (valid_until IS NULL OR valid_until >= valid_from),
    CONSTRAINT working_hours_no_overlap EXCLUDE USING gist (
        clinic_id WITH =,
        dentist_id WITH =,
        weekday WITH =,
        daterange(valid_from, valid_until, '[]') WITH &&,
        int4range(start_minute, end_minute, '[)') WITH &&
    )
);
-- A clinic's hours for a date range, all dentists or one: served by the constraint's GiST index
-- (clinic_id, dentist_id, …) for one dentist and by this one for the clinic.
CREATE INDEX working_hours_clinic_idx ON working_hours (clinic_id, dentist_id, weekday);

CREATE TYPE time_off_kind AS ENUM
    ('holiday', 'sick_leave', 'training', 'personal', 'closure', 'public_holiday');

-- Time away: a dentist's (`dentist_id` set: holiday, sick leave, training, personal) or the
-- whole clinic's (`dentist_id` NULL: closure, public holiday), from `starts_at` to `ends_at`.
-- `all_day`: entered as whole days in clinic time (the instants are those days' local
-- midnights), so a calendar shows dates rather than times. `label` is a short staff-facing name
-- ("Navidad", "Congreso SEPES"); never health details, never logged.
CREATE TABLE time_off (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id   uuid NOT NULL REFERENCES clinics (id),
    dentist_id  uuid,
    kind        time_off_kind NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    all_day     boolean NOT NULL DEFAULT false,
    label       text NOT NULL DEFAULT '' CHECK (length(label) <= 100),
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT time_off_dentist_fkey FOREIGN KEY (clinic_id, dentist_id)
        REFERENCES memberships (clinic_id, user_id),
    CONSTRAINT time_off_ends_after_start CHECK (ends_at > starts_at),
    CONSTRAINT time_off_at_most_a_year CHECK (ends_at - starts_at <= interval '366 days'),
    -- Whose it is decides what it may be.
    CONSTRAINT time_off_kind_matches CHECK (
        (dentist_id IS NULL) = (kind IN ('closure', 'public_holiday')))
);
-- What overlaps a range of a clinic (a booking's check, a day's agenda, free-slot search).
CREATE INDEX time_off_clinic_range_idx ON time_off
    USING gist (clinic_id, tstzrange(starts_at, ends_at, '[)'));

-- A clinic's treatment rooms (cubículos). Deactivated, never deleted: old appointments keep
-- theirs.
CREATE TABLE chairs (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id   uuid NOT NULL REFERENCES clinics (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chairs_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT chairs_clinic_name_key UNIQUE (clinic_id, name)
);

-- An appointment may take a chair; a chair, like a dentist, is never booked twice for the same
-- minute (cancelled appointments free it). `booked_with_override`: an admin booked it outside
-- the dentist's hours or on time off, on purpose (the audit trail says who).
ALTER TABLE appointments
    ADD COLUMN chair_id uuid,
    ADD COLUMN booked_with_override boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT appointments_chair_fkey FOREIGN KEY (clinic_id, chair_id)
        REFERENCES chairs (clinic_id, id),
    ADD CONSTRAINT appointments_chair_no_overlap EXCLUDE USING gist (
        clinic_id WITH =,
        chair_id WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status <> 'cancelled' AND chair_id IS NOT NULL);

ALTER TABLE working_hours ENABLE ROW LEVEL SECURITY;
ALTER TABLE working_hours FORCE ROW LEVEL SECURITY;
CREATE POLICY working_hours_tenant ON working_hours
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());
ALTER TABLE time_off ENABLE ROW LEVEL SECURITY;
ALTER TABLE time_off FORCE ROW LEVEL SECURITY;
CREATE POLICY time_off_tenant ON time_off
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());
ALTER TABLE chairs ENABLE ROW LEVEL SECURITY;
ALTER TABLE chairs FORCE ROW LEVEL SECURITY;
CREATE POLICY chairs_tenant ON chairs
    USING (clinic_id = app_current_clinic())
    WITH CHECK (clinic_id = app_current_clinic());

-- A dentist's weekly hours are replaced as a whole; time off is removed when it was entered by
-- mistake (the audit trail keeps it); chairs are deactivated.
GRANT SELECT, INSERT, DELETE ON working_hours TO pulso_app;
GRANT SELECT, INSERT, DELETE ON time_off TO pulso_app;
GRANT SELECT, INSERT, UPDATE ON chairs TO pulso_app;

-- Booking now checks the dentist's hours. A database migrated from before they existed keeps
-- booking as it did: every active dentist gets hours around the clock, every day, from today,
-- until an admin replaces them with real ones (`PUT /working-hours/{dentist_id}`). Dentists
-- who join later start with none, so nothing is bookable for them until their hours are set.
-- The migrating owner is subject to FORCE ROW LEVEL SECURITY like everyone: FORCE is lifted for
-- the one statement that reads every clinic's memberships and restored before the migration's
-- transaction commits (ALTER TABLE holds its lock until then, so nobody sees it lifted).
ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY;
ALTER TABLE working_hours NO FORCE ROW LEVEL SECURITY;
INSERT INTO working_hours (clinic_id, dentist_id, weekday, start_minute, end_minute, valid_from)
SELECT m.clinic_id, m.user_id, d.weekday, 0, 1440, current_date
  FROM memberships m CROSS JOIN generate_series(1, 7) AS d(weekday)
 WHERE m.role = 'dentist' AND m.active;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE working_hours FORCE ROW LEVEL SECURITY;
