//! The reader every config section reads its variables through: defaults, parsing, and the
//! list of problems it collects instead of failing at the first.

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

pub(super) struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    pub(super) problems: Vec<String>,
}

impl<'a> Vars<'a> {
    pub(super) fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    pub(super) fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    pub(super) fn required(&mut self, name: &str) -> Option<String> {
        let value = self.optional(name);
        if value.is_none() {
            self.problems.push(format!("{name}: missing"));
        }
        value
    }

    pub(super) fn parsed<T: FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.optional(name) {
            None => default,
            Some(raw) => match raw.trim().parse() {
                Ok(value) => value,
                Err(_) => {
                    self.problems
                        .push(format!("{name}: expected {expected}, got {raw:?}"));
                    default
                }
            },
        }
    }

    pub(super) fn millis(&mut self, name: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.parsed(name, default_ms, "a number of milliseconds"))
    }

    pub(super) fn seconds(&mut self, name: &str, default_seconds: u64) -> Duration {
        Duration::from_secs(self.parsed(name, default_seconds, "a number of seconds"))
    }

    /// An AWS service endpoint: an `https://` URL, or a local stand-in on `http://127.0.0.1…` /
    /// `http://localhost…` (plain HTTP only on loopback, so no real call goes out unencrypted).
    pub(super) fn endpoint_url(&mut self, name: &str) -> Option<String> {
        let url = self.optional(name).map(|url| url.trim().to_owned());
        let valid = url.as_deref().is_none_or(|url| {
            url.starts_with("https://")
                || url.starts_with("http://127.0.0.1")
                || url.starts_with("http://localhost")
        });
        self.check(valid, || {
            format!(
                "{name}: must be an https:// URL (http://127.0.0.1 or localhost for a local \
                 stand-in)"
            )
        });
        url.filter(|_| valid)
    }

    /// Records `problem` unless `ok`.
    pub(super) fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(problem());
        }
    }

    /// Records a problem naming `name` unless `value` is within `range`.
    pub(super) fn check_range(&mut self, name: &str, value: u64, range: RangeInclusive<u64>) {
        self.check(range.contains(&value), || {
            format!(
                "{name}: must be between {} and {}, got {value}",
                range.start(),
                range.end()
            )
        });
    }
}
