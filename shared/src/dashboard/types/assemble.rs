//! How the figures row becomes a [`Dashboard`]: each section assembled in its own step, zeros
//! filled in where nothing was booked, and a row out of step with the code refused rather than
//! trusted.

use super::{
    AppointmentsToday, DEFAULT_CURRENCY, Dashboard, DayLoad, DentistLoad, EstimatedRevenue,
    FiguresRow, LOAD_DAYS, LoadNext7Days, MalformedFigures, NO_SHOW_WINDOW, NewPatients,
    NoShowRate, PricedProcedure, StatusCounts,
};
use crate::appointments::AppointmentStatus;
use crate::ids::UserId;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// A dentist's (appointments, booked minutes) on each of the seven days, today first.
type WeekLoad = [(i64, i64); LOAD_DAYS];

impl Dashboard {
    /// Builds the response from the query's row, filling zeros where nothing was booked.
    /// `working`: each dentist's working minutes on the seven days (`schedule::working_minutes`).
    pub fn assemble(
        row: FiguresRow,
        now: DateTime<Utc>,
        working: &BTreeMap<UserId, Vec<i64>>,
    ) -> Result<Self, MalformedFigures> {
        check_lengths(&row)?;
        let today = row.today;
        let by_status = count_statuses(&row.today_statuses, &row.today_counts)?;
        let bookings = bookings_by_dentist(&row)?;
        let dates = week_from(today);
        let dentists = dentist_loads(
            (&row.dentist_ids, row.dentist_names),
            &dates,
            &bookings,
            working,
        );
        let procedures = priced_procedures(
            &row.revenue_appointments,
            row.revenue_prices,
            row.revenue_currencies,
        );
        Ok(Dashboard {
            generated_at: now,
            timezone: row.timezone,
            appointments_today: AppointmentsToday {
                date: today,
                total: by_status.total(),
                by_status,
            },
            load_next_7_days: LoadNext7Days {
                from: today,
                to: dates[LOAD_DAYS - 1],
                dentists,
            },
            no_show_rate_30_days: NoShowRate {
                since: now - NO_SHOW_WINDOW,
                no_shows: row.no_shows,
                closed_appointments: row.closed,
                rate: rate(row.no_shows, row.closed),
            },
            new_patients: NewPatients {
                last_7_days: row.new_patients_7_days,
                last_30_days: row.new_patients_30_days,
            },
            estimated_revenue_this_month: estimate_revenue(
                format!("{:04}-{:02}", today.year(), today.month()),
                &procedures,
            ),
        })
    }
}

/// The row's parallel arrays must pair up: zipping arrays of different lengths would silently
/// drop figures.
fn check_lengths(row: &FiguresRow) -> Result<(), MalformedFigures> {
    let same_length = |a: usize, b: usize, what| {
        if a == b {
            Ok(())
        } else {
            Err(MalformedFigures(what))
        }
    };
    same_length(
        row.today_statuses.len(),
        row.today_counts.len(),
        "today's statuses",
    )?;
    same_length(
        row.dentist_ids.len(),
        row.dentist_names.len(),
        "dentist names",
    )?;
    for len in [
        row.load_days.len(),
        row.load_appointments.len(),
        row.load_minutes.len(),
    ] {
        same_length(row.load_dentists.len(), len, "load entries")?;
    }
    for len in [row.revenue_prices.len(), row.revenue_currencies.len()] {
        same_length(row.revenue_appointments.len(), len, "revenue entries")?;
    }
    Ok(())
}

/// Today's count per status, zeros included.
fn count_statuses(statuses: &[String], counts: &[i64]) -> Result<StatusCounts, MalformedFigures> {
    let mut by_status = StatusCounts::default();
    for (status, count) in statuses.iter().zip(counts) {
        let status = status
            .parse::<AppointmentStatus>()
            .map_err(|_| MalformedFigures("unknown appointment status"))?;
        by_status.add(status, *count);
    }
    Ok(by_status)
}

/// Today and the six days after it.
fn week_from(today: NaiveDate) -> Vec<NaiveDate> {
    (0..LOAD_DAYS as u64)
        .map(|offset| today + chrono::Days::new(offset))
        .collect()
}

/// The row's (dentist, day) entries summed per dentist; a day outside the seven is refused.
fn bookings_by_dentist(row: &FiguresRow) -> Result<HashMap<Uuid, WeekLoad>, MalformedFigures> {
    let mut load: HashMap<Uuid, WeekLoad> = HashMap::new();
    for (((dentist, day), appointments), minutes) in row
        .load_dentists
        .iter()
        .zip(&row.load_days)
        .zip(&row.load_appointments)
        .zip(&row.load_minutes)
    {
        let day = usize::try_from(*day)
            .ok()
            .filter(|day| *day < LOAD_DAYS)
            .ok_or(MalformedFigures("load day out of range"))?;
        let entry = &mut load.entry(*dentist).or_insert([(0, 0); LOAD_DAYS])[day];
        entry.0 += appointments;
        entry.1 += minutes;
    }
    Ok(load)
}

/// Every dentist of the row, in its order, with seven days of load (zeros where nothing was
/// booked or nobody works), the week's totals and the share of working time booked.
fn dentist_loads(
    (ids, names): (&[Uuid], Vec<String>),
    dates: &[NaiveDate],
    bookings: &HashMap<Uuid, WeekLoad>,
    working: &BTreeMap<UserId, Vec<i64>>,
) -> Vec<DentistLoad> {
    ids.iter()
        .zip(names)
        .map(|(id, name)| {
            let dentist = UserId(*id);
            let days = bookings.get(id).copied().unwrap_or([(0, 0); LOAD_DAYS]);
            let hours = working.get(&dentist);
            let days: Vec<DayLoad> = dates
                .iter()
                .zip(days)
                .enumerate()
                .map(|(at, (date, (appointments, booked_minutes)))| {
                    let working_minutes = hours
                        .and_then(|minutes| minutes.get(at))
                        .copied()
                        .unwrap_or(0);
                    DayLoad {
                        date: *date,
                        appointments,
                        booked_minutes,
                        working_minutes,
                        utilisation: rate(booked_minutes, working_minutes),
                    }
                })
                .collect();
            let booked_minutes = days.iter().map(|d| d.booked_minutes).sum();
            let working_minutes = days.iter().map(|d| d.working_minutes).sum();
            DentistLoad {
                dentist_id: dentist,
                name,
                appointments: days.iter().map(|d| d.appointments).sum(),
                booked_minutes,
                working_minutes,
                utilisation: rate(booked_minutes, working_minutes),
                days,
            }
        })
        .collect()
}

/// The month's completed appointments per procedure, with the price that applies to them.
fn priced_procedures(
    appointments: &[i64],
    prices: Vec<Option<i64>>,
    currencies: Vec<Option<String>>,
) -> Vec<PricedProcedure> {
    appointments
        .iter()
        .zip(prices)
        .zip(currencies)
        .map(|((appointments, price_cents), currency)| PricedProcedure {
            appointments: *appointments,
            price_cents,
            currency,
        })
        .collect()
}

/// A share to four decimals (0.0812 is 8.12 %); `None` without a denominator.
fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

/// Sums the priced appointments in the currency most of them are priced in. A clinic's prices
/// normally share one currency; should they not, the others cannot be added to it and count
/// as unpriced rather than being summed as if they were the same money.
pub fn estimate_revenue(month: String, procedures: &[PricedProcedure]) -> EstimatedRevenue {
    let completed_appointments: i64 = procedures.iter().map(|p| p.appointments).sum();
    // currency -> (appointments, amount); a BTreeMap so a tie picks the same currency every time.
    let mut by_currency: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for procedure in procedures {
        if let (Some(price), Some(currency)) = (procedure.price_cents, &procedure.currency) {
            let entry = by_currency.entry(currency.as_str()).or_default();
            entry.0 += procedure.appointments;
            entry.1 = entry
                .1
                .saturating_add(price.saturating_mul(procedure.appointments));
        }
    }
    let main = by_currency
        .iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then_with(|| b.0.cmp(a.0)))
        .map(|(currency, totals)| (currency.to_string(), *totals));
    let (currency, (priced, amount_cents)) =
        main.unwrap_or_else(|| (DEFAULT_CURRENCY.to_string(), (0, 0)));
    EstimatedRevenue {
        month,
        amount_cents,
        currency,
        completed_appointments,
        unpriced_appointments: completed_appointments - priced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(today: NaiveDate) -> FiguresRow {
        FiguresRow {
            timezone: "Europe/Madrid".into(),
            today,
            today_statuses: vec!["confirmed".into(), "no_show".into()],
            today_counts: vec![3, 1],
            dentist_ids: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
            dentist_names: vec!["Ana".into(), "Luis".into()],
            load_dentists: vec![Uuid::from_u128(2), Uuid::from_u128(2)],
            load_days: vec![0, 6],
            load_appointments: vec![2, 1],
            load_minutes: vec![75, 30],
            no_shows: 1,
            closed: 3,
            new_patients_7_days: 2,
            new_patients_30_days: 5,
            revenue_appointments: vec![2, 1],
            revenue_prices: vec![Some(3_500), None],
            revenue_currencies: vec![Some("EUR".into()), None],
        }
    }

    #[test]
    fn every_status_and_every_day_is_present_with_zeros() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 28).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-03-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // Luis works 8 hours today and nothing on the seventh day.
        let working = BTreeMap::from([(UserId(Uuid::from_u128(2)), vec![480, 480, 0, 0, 0, 0, 0])]);
        let dashboard = Dashboard::assemble(row(today), now, &working).unwrap();
        assert_eq!(dashboard.appointments_today.total, 4);
        assert_eq!(
            dashboard.appointments_today.by_status,
            StatusCounts {
                confirmed: 3,
                no_show: 1,
                ..StatusCounts::default()
            }
        );
        let load = &dashboard.load_next_7_days;
        assert_eq!(load.to, NaiveDate::from_ymd_opt(2026, 4, 3).unwrap());
        assert_eq!(load.dentists.len(), 2);
        assert!(load.dentists[0].days.iter().all(|d| d.appointments == 0));
        assert_eq!(load.dentists[0].days.len(), LOAD_DAYS);
        let luis = &load.dentists[1];
        assert_eq!((luis.appointments, luis.booked_minutes), (3, 105));
        assert_eq!(
            luis.days[6].date,
            NaiveDate::from_ymd_opt(2026, 4, 3).unwrap()
        );
        assert_eq!(luis.days[6].appointments, 1);
        assert_eq!(
            (luis.days[0].working_minutes, luis.days[0].utilisation),
            (480, Some(0.1563))
        );
        // Booked with an override on a day without hours: no share to give.
        assert_eq!(
            (luis.days[6].working_minutes, luis.days[6].utilisation),
            (0, None)
        );
        assert_eq!(
            (luis.working_minutes, luis.utilisation),
            (960, Some(0.1094))
        );
        assert_eq!(load.dentists[0].utilisation, None);
        assert_eq!(dashboard.no_show_rate_30_days.rate, Some(0.3333));
        let revenue = &dashboard.estimated_revenue_this_month;
        assert_eq!(revenue.month, "2026-03");
        assert_eq!(
            (
                revenue.amount_cents,
                revenue.completed_appointments,
                revenue.unpriced_appointments
            ),
            (7_000, 3, 1)
        );
    }

    #[test]
    fn a_row_out_of_step_with_the_code_is_an_error_not_a_panic() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 28).unwrap();
        let mut bad = row(today);
        bad.load_days = vec![0, 7];
        assert!(Dashboard::assemble(bad, Utc::now(), &BTreeMap::new()).is_err());
        let mut bad = row(today);
        bad.today_statuses = vec!["lost".into(), "confirmed".into()];
        assert!(Dashboard::assemble(bad, Utc::now(), &BTreeMap::new()).is_err());
        let mut bad = row(today);
        bad.dentist_names.pop();
        assert!(Dashboard::assemble(bad, Utc::now(), &BTreeMap::new()).is_err());
    }

    #[test]
    fn no_rate_without_closed_appointments() {
        assert_eq!(rate(0, 0), None);
        assert_eq!(rate(0, 5), Some(0.0));
        assert_eq!(rate(1, 8), Some(0.125));
    }

    #[test]
    fn revenue_is_summed_in_the_currency_most_appointments_are_priced_in() {
        let procedure =
            |appointments, price: Option<i64>, currency: Option<&str>| PricedProcedure {
                appointments,
                price_cents: price,
                currency: currency.map(str::to_string),
            };
        let revenue = estimate_revenue(
            "2026-11".into(),
            &[
                procedure(4, Some(1_000), Some("EUR")),
                procedure(1, Some(9_999), Some("USD")),
                procedure(2, None, Some("EUR")),
                procedure(3, Some(500), Some("EUR")),
            ],
        );
        assert_eq!(revenue.currency, "EUR");
        assert_eq!(revenue.amount_cents, 5_500);
        assert_eq!(revenue.completed_appointments, 10);
        assert_eq!(revenue.unpriced_appointments, 3);

        let nothing = estimate_revenue("2026-11".into(), &[]);
        assert_eq!(
            (
                nothing.currency.as_str(),
                nothing.amount_cents,
                nothing.unpriced_appointments
            ),
            (DEFAULT_CURRENCY, 0, 0)
        );
    }
}
