-- The free-slot search's day loader (issue 14 §6) in one round trip: a clinic's working hours,
-- time off, live appointments and active chairs over a range of its days, read under row-level
-- security scoped to that clinic, without a transaction of its own.
--
-- As a statement in a tenant transaction it cost three round trips (BEGIN and SET LOCAL, the
-- statement, COMMIT), more than the statement's own execution on a day's miss. Here the clinic is
-- set transaction-locally before the query runs (`app.clinic_id`, as `db::begin_tenant` sets it),
-- so a call outside a transaction is scoped to that one statement and the setting ends with it;
-- a call inside one puts the setting it found back before returning. SECURITY INVOKER: it runs
-- as its caller (`pulso_app`), with no right beyond the caller's and every policy applied.
--
-- Each part is aggregated into arrays in step (one aggregate feeds all of a part's arrays row by
-- row, so their elements line up); a part without rows gives NULL arrays. Arrays, not rows: a
-- fortnight of a large clinic is thousands of appointments, and each row costs the client far
-- more to decode than an array element.
CREATE FUNCTION clinic_capacity(
    clinic uuid,
    first_date date,
    last_date date,
    weekdays smallint[],
    range_start timestamptz,
    range_end timestamptz
) RETURNS TABLE (
    rule_dentists uuid[],
    rule_weekdays smallint[],
    rule_starts smallint[],
    rule_ends smallint[],
    rule_froms date[],
    rule_untils date[],
    away_dentists uuid[],
    away_starts timestamptz[],
    away_ends timestamptz[],
    booked_dentists uuid[],
    booked_chairs uuid[],
    booked_starts timestamptz[],
    booked_ends timestamptz[],
    chairs uuid[]
)
    LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $$
DECLARE
    found_clinic text := current_setting('app.clinic_id', true);
BEGIN
    PERFORM set_config('app.clinic_id', clinic::text, true);
    RETURN QUERY
    WITH rules AS (
        -- The weekly intervals of the clinic's active dentists valid on some date of the range
        -- and on one of its weekdays.
        SELECT array_agg(w.dentist_id), array_agg(w.weekday), array_agg(w.start_minute),
               array_agg(w.end_minute), array_agg(w.valid_from), array_agg(w.valid_until)
          FROM working_hours w
          JOIN memberships m ON m.clinic_id = w.clinic_id AND m.user_id = w.dentist_id
         WHERE w.clinic_id = clinic AND m.active AND m.role = 'dentist'
           AND w.valid_from <= last_date
           AND (w.valid_until IS NULL OR w.valid_until >= first_date)
           AND w.weekday = ANY(weekdays)
    ), away AS (
        SELECT array_agg(t.dentist_id), array_agg(t.starts_at), array_agg(t.ends_at)
          FROM time_off t
         WHERE t.clinic_id = clinic
           AND tstzrange(t.starts_at, t.ends_at, '[)') && tstzrange(range_start, range_end, '[)')
    ), booked AS (
        -- An appointment lasts at most 12 hours (a table constraint): bounding the start from
        -- both sides keeps this a short range scan of (clinic_id, starts_at), index-only
        -- (appointments_clinic_live_idx).
        SELECT array_agg(a.dentist_id), array_agg(a.chair_id), array_agg(a.starts_at),
               array_agg(a.ends_at)
          FROM appointments a
         WHERE a.clinic_id = clinic AND a.status <> 'cancelled'
           AND a.starts_at > range_start - interval '12 hours' AND a.starts_at < range_end
           AND a.ends_at > range_start
    ), active_chairs AS (
        SELECT array_agg(c.id ORDER BY c.id) FROM chairs c WHERE c.clinic_id = clinic AND c.active
    )
    SELECT * FROM rules, away, booked, active_chairs;
    PERFORM set_config('app.clinic_id', coalesce(found_clinic, ''), true);
END
$$;

REVOKE ALL ON FUNCTION clinic_capacity(uuid, date, date, smallint[], timestamptz, timestamptz)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clinic_capacity(uuid, date, date, smallint[], timestamptz, timestamptz)
    TO pulso_app;
