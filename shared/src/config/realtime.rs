//! Where and how real-time notifications are pushed (`shared::realtime`).

use super::vars::Vars;
use std::time::Duration;

/// Real-time notifications (`shared::realtime`): where and how they are pushed.
#[derive(Clone, Debug)]
pub struct RealtimeConfig {
    /// `WS_ENDPOINT`: the WebSocket API's @connections endpoint
    /// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, or the local gateway's
    /// `http://127.0.0.1:4401/{stage}`). Unset: notifications are stored, never pushed (clients
    /// read them with `GET /notifications` or a replay).
    pub ws_endpoint: Option<String>,
    /// `AWS_REGION`, which signs the @connections calls; unset, the SDK's own lookup decides.
    pub aws_region: Option<String>,
    /// One PostToConnection may take this long; a slower connection is skipped, not waited for.
    pub push_timeout: Duration,
    /// PostToConnection calls in flight at once for one notification.
    pub push_concurrency: usize,
    /// Live connections one user may hold at once (tabs, devices); one more is refused at
    /// `$connect` with 429, so a runaway client cannot fill the registry or the push fan-out.
    pub max_connections_per_user: u32,
}

impl RealtimeConfig {
    pub(super) fn read(vars: &mut Vars) -> Self {
        let ws_endpoint = vars
            .optional("WS_ENDPOINT")
            .map(|url| url.trim().to_owned());
        vars.check(
            ws_endpoint
                .as_deref()
                .is_none_or(|url| url.starts_with("https://") || url.starts_with("http://")),
            || {
                "WS_ENDPOINT: must be an http(s):// URL, e.g. \
                 https://{api-id}.execute-api.{region}.amazonaws.com/{stage}"
                    .into()
            },
        );
        let aws_region = vars
            .optional("AWS_REGION")
            .map(|region| region.trim().to_owned());
        let push_timeout = vars.millis("WS_PUSH_TIMEOUT_MS", 2_000);
        vars.check_range(
            "WS_PUSH_TIMEOUT_MS",
            push_timeout.as_millis() as u64,
            1..=29_000,
        );
        let push_concurrency = vars.parsed("WS_PUSH_CONCURRENCY", 64, "a number of calls");
        vars.check_range("WS_PUSH_CONCURRENCY", push_concurrency as u64, 1..=1_024);
        let max_connections_per_user =
            vars.parsed("WS_MAX_CONNECTIONS_PER_USER", 10, "a number of connections");
        vars.check_range(
            "WS_MAX_CONNECTIONS_PER_USER",
            u64::from(max_connections_per_user),
            1..=1_000,
        );
        Self {
            ws_endpoint,
            aws_region,
            push_timeout,
            push_concurrency,
            max_connections_per_user,
        }
    }
}
