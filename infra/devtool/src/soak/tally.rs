//! The soak's tally of what it saw, and whether that fails the run.

use crate::stack::Reply;
use std::collections::BTreeMap;

/// What the soak saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub requests: u64,
    /// Non-2xx answers of the functions, by status.
    pub errors: BTreeMap<u16, u64>,
    /// 5xx the gateway answered itself (`{"message": …}`: 502/503/504, and 500 for a function
    /// that timed out).
    pub gateway: BTreeMap<u16, u64>,
    /// No answer within [`REQUEST_WAIT`](super::REQUEST_WAIT), or no connection.
    pub no_answer: u64,
    pub ws_ok: u64,
    pub ws_failed: u64,
}

impl Tally {
    pub fn record(&mut self, reply: Option<&Reply>) {
        self.requests += 1;
        match reply {
            None => self.no_answer += 1,
            Some(reply) if (200..300).contains(&reply.status) => {}
            Some(reply) if reply.status >= 500 && reply.is_gateway_message() => {
                *self.gateway.entry(reply.status).or_default() += 1
            }
            Some(reply) => *self.errors.entry(reply.status).or_default() += 1,
        }
    }

    pub fn server_errors(&self) -> u64 {
        let function_5xx: u64 = self.errors.range(500..).map(|(_, n)| n).sum();
        function_5xx + self.gateway.values().sum::<u64>()
    }

    /// Any 5xx (a gateway timeout among them), a request without answer, a broken session.
    pub fn failed(&self) -> bool {
        self.server_errors() + self.no_answer + self.ws_failed > 0
    }

    pub fn describe(&self) -> String {
        let by_status = |counts: &BTreeMap<u16, u64>| -> String {
            if counts.is_empty() {
                return "none".into();
            }
            let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} x{n}")).collect();
            parts.join(", ")
        };
        format!(
            "{} requests, errors by status: {}; gateway 5xx: {}; no answer: {}; WebSocket sessions {} ok / {} failed",
            self.requests,
            by_status(&self.errors),
            by_status(&self.gateway),
            self.no_answer,
            self.ws_ok,
            self.ws_failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::reply;

    #[test]
    fn tallies_errors_by_origin() {
        let mut tally = Tally::default();
        tally.record(Some(&reply(200, "{}")));
        tally.record(Some(&reply(404, r#"{"title":"Not found","status":404}"#)));
        assert!(!tally.failed());
        tally.record(Some(&reply(
            504,
            r#"{"message":"Endpoint request timed out"}"#,
        )));
        tally.record(Some(&reply(500, r#"{"message":"Internal Server Error"}"#)));
        tally.record(Some(&reply(
            503,
            r#"{"title":"Service unavailable","status":503}"#,
        )));
        tally.record(None);
        assert_eq!(tally.requests, 6);
        assert_eq!(tally.errors, BTreeMap::from([(404, 1), (503, 1)]));
        assert_eq!(tally.gateway, BTreeMap::from([(500, 1), (504, 1)]));
        assert_eq!(tally.server_errors(), 3);
        assert_eq!(tally.no_answer, 1);
        assert!(tally.failed());
        assert!(tally.describe().contains("gateway 5xx: 500 x1, 504 x1"));
    }

    #[test]
    fn a_failed_session_fails_the_soak() {
        let tally = Tally {
            ws_failed: 1,
            ..Tally::default()
        };
        assert!(tally.failed());
    }
}
