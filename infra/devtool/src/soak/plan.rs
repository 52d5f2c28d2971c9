//! The soak's plan: the reads a browser sends, and each round of them: a burst, maybe a
//! WebSocket session, a gap.

use rand::Rng;
use std::time::Duration;

const MAX_BURST: usize = 20;
const MAX_GAP: Duration = Duration::from_secs(90);
const WEBSOCKET_CHANCE: f64 = 0.25;
const PATIENT_DETAIL: &str = "/patients/{id}";
pub const PATIENT_LIST: &str = "/patients?search=garcia";

/// A GET the soak sends: the route key it exercises and the path (with `{id}` for a patient
/// learnt from a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub key: &'static str,
    pub path: String,
}

/// template.yaml's GETs that need no id, plus a patient's page and X-rays (the id comes from a
/// list): what the frontend reads while a developer clicks around.
pub fn reads(today: chrono::NaiveDate) -> Vec<Read> {
    let week = today + chrono::Days::new(7);
    let range = format!("/appointments?from={today}T00:00:00Z&to={week}T00:00:00Z");
    let read = |key, path: &str| Read {
        key,
        path: path.to_owned(),
    };
    vec![
        read("GET /health", "/health"),
        read("GET /patients", PATIENT_LIST),
        read("GET /patients", "/patients?limit=20"),
        read("GET /patients/{id}", PATIENT_DETAIL),
        read("GET /patients/{id}/xrays", "/patients/{id}/xrays"),
        read("GET /appointments", "/appointments"),
        read("GET /appointments", &range),
        read("GET /dashboard", "/dashboard"),
        read("GET /notifications", "/notifications"),
        read("GET /catalogs/{kind}", "/catalogs/procedure"),
        read("GET /catalogs/{kind}", "/catalogs/insurer"),
        read("GET /admin/queues", "/admin/queues"),
        read("GET /admin/jobs", "/admin/jobs"),
        read("GET /admin/cache/stats", "/admin/cache/stats"),
    ]
}

/// One round of the plan: a burst (indexes into the reads), maybe a WebSocket session, a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    pub burst: Vec<usize>,
    pub websocket: bool,
    pub gap: Duration,
}

pub fn plan_round(rng: &mut impl Rng, reads: usize) -> Round {
    let size = rng.random_range(1..=MAX_BURST);
    let burst = (0..size)
        .map(|_| rng.random_range(0..reads.max(1)))
        .collect();
    let websocket = rng.random_bool(WEBSOCKET_CHANCE);
    let gap_ms = rng.random_range(0..=MAX_GAP.as_millis() as u64);
    Round {
        burst,
        websocket,
        gap: Duration::from_millis(gap_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn one_seed_one_plan() {
        let plan = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..50)
                .map(|_| plan_round(&mut rng, 14))
                .collect::<Vec<_>>()
        };
        assert_eq!(plan(42), plan(42));
        assert_ne!(plan(42), plan(43));
    }

    #[test]
    fn rounds_stay_within_their_bounds() {
        let mut rng = StdRng::seed_from_u64(1);
        let rounds: Vec<Round> = (0..500).map(|_| plan_round(&mut rng, 3)).collect();
        assert!(
            rounds
                .iter()
                .all(|r| (1..=MAX_BURST).contains(&r.burst.len()))
        );
        assert!(rounds.iter().flat_map(|r| &r.burst).all(|i| *i < 3));
        assert!(rounds.iter().all(|r| r.gap <= MAX_GAP));
        // Some gaps outlast the minute of idleness that used to kill the functions.
        assert!(rounds.iter().any(|r| r.gap > Duration::from_secs(60)));
        assert!(rounds.iter().any(|r| r.websocket) && rounds.iter().any(|r| !r.websocket));
    }

    #[test]
    fn reads_need_no_id_but_the_patients() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 5, 4).unwrap();
        let reads = reads(date);
        assert!(reads.iter().all(|r| r.key.starts_with("GET /")));
        assert!(
            reads.iter().any(
                |r| r.path == "/appointments?from=2026-05-04T00:00:00Z&to=2026-05-11T00:00:00Z"
            )
        );
        let with_id: Vec<&str> = reads
            .iter()
            .filter(|r| r.path.contains('{'))
            .map(|r| r.key)
            .collect();
        assert_eq!(with_id, ["GET /patients/{id}", "GET /patients/{id}/xrays"]);
    }
}
