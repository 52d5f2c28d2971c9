//! The gateway's start-up summary: routes, CORS, the WebSocket API, schedules and functions as
//! read from the template, so a developer sees what is served before the first request.

use std::fmt::Write as _;

use crate::schedule::{self, expression::Timing};
use crate::websocket::WebSocketApi;
use crate::websocket::server::{FRAME_LIMIT, MESSAGE_LIMIT, Timers};
use crate::{Gateway, Invoker, display_addr, routes};

impl Gateway {
    /// What the gateway serves, as printed at start-up.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        self.describe_routes(&mut text);
        match self.http_api.cors() {
            Some(cors) => {
                let _ = writeln!(text, "CORS: {cors}");
            }
            None => text.push_str("CORS: not configured (browsers get no CORS headers)\n"),
        }
        match &self.websocket {
            Some((_, server)) => {
                let addr = self.ws_local_addr().map(display_addr);
                describe_websocket(&mut text, server.api(), server.timers(), addr);
            }
            None => text.push_str(
                "WebSocket: off (the template declares no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET)\n",
            ),
        }
        self.describe_schedules(&mut text);
        if !self.notes.is_empty() {
            text.push_str("Notes on the template:\n");
            for note in &self.notes {
                let _ = writeln!(text, "  - {note}");
            }
        }
        self.describe_functions(&mut text);
        text
    }

    fn describe_routes(&self, text: &mut String) {
        let mut routes: Vec<_> = self.http_api.routes().routes().iter().collect();
        if routes.is_empty() {
            text.push_str("Routes: none (no function has an event of `Type: HttpApi`)\n");
            return;
        }
        routes.sort_by(|a, b| {
            (a.path.to_string(), a.method.to_string())
                .cmp(&(b.path.to_string(), b.method.to_string()))
        });
        let width = routes
            .iter()
            .map(|r| r.path.to_string().len())
            .max()
            .unwrap_or(0);
        text.push_str("Routes (from the SAM template):\n");
        for route in routes {
            let method = match route.path {
                routes::RoutePath::Default => String::new(),
                routes::RoutePath::Pattern { .. } => route.method.to_string(),
            };
            let _ = writeln!(
                text,
                "  {method:<7} {path:<width$}  -> {function}",
                path = route.path.to_string(),
                function = route.function,
            );
        }
    }

    fn describe_schedules(&self, text: &mut String) {
        let specs: Vec<_> = self.scheduler.specs().collect();
        if specs.is_empty() {
            text.push_str("Schedules: none\n");
            return;
        }
        let options = self.scheduler.options();
        if options.automatic {
            let speed = match options.speed {
                1 => String::new(),
                n => format!(", rate(...) {n}x faster"),
            };
            let _ = writeln!(text, "Schedules (ticking by themselves{speed}):");
        } else {
            text.push_str("Schedules (--schedules off: manual trigger only):\n");
        }
        let id_width = specs.iter().map(|s| s.id().len()).max().unwrap_or(0);
        let expression_width = specs.iter().map(|s| s.expression.len()).max().unwrap_or(0);
        for spec in &specs {
            let when = if !spec.enabled {
                "disabled (manual trigger only)".to_owned()
            } else if !options.automatic {
                "manual trigger only".to_owned()
            } else {
                match &spec.timing {
                    Timing::Rate(_) => match self.scheduler.period(spec) {
                        Some(period) => format!("every {}", schedule::human(period)),
                        None => String::new(),
                    },
                    Timing::Cron(_) => "at its cron times (UTC)".to_owned(),
                    Timing::ManualOnly(why) => format!("manual trigger only: {why}"),
                }
            };
            let _ = writeln!(
                text,
                "  {id:<id_width$}  {expression:<expression_width$}  -> {function}  {when}",
                id = spec.id(),
                expression = spec.expression,
                function = spec.function,
            );
        }
        if let Ok(addr) = self.local_addr() {
            let base = format!("http://{}", display_addr(addr));
            let _ = writeln!(
                text,
                "  list: curl {base}/_local/schedules   run now: curl -X POST {base}/_local/schedules/<Function.Event>/trigger"
            );
        }
    }

    fn describe_functions(&self, text: &mut String) {
        let Some((host, _)) = &self.runtime else {
            if let Invoker::Remote(api) = self.http_api.invoker() {
                let _ = writeln!(text, "Functions: invoked through {}", api.base());
            }
            return;
        };
        let specs: Vec<_> = host.specs().collect();
        let _ = writeln!(
            text,
            "Functions (processes started on demand; Runtime API on {}{}):",
            host.runtime_api(),
            if self.rebuild.is_some() {
                "; rebuilt and restarted after an edit"
            } else {
                ""
            }
        );
        let width = specs.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for spec in specs {
            let _ = writeln!(
                text,
                "  {name:<width$}  timeout {timeout} s, {memory} MB{reserved}",
                name = spec.name,
                timeout = spec.timeout.as_secs(),
                memory = spec.memory_mb,
                reserved = spec
                    .reserved_concurrency
                    .map_or_else(String::new, |n| format!(", at most {n} at once")),
            );
        }
        if let Ok(addr) = self.local_addr() {
            let _ = writeln!(
                text,
                "  list: curl http://{}/_local/functions",
                display_addr(addr)
            );
        }
    }
}

fn describe_websocket(text: &mut String, api: &WebSocketApi, timers: Timers, addr: Option<String>) {
    let addr = addr.unwrap_or_else(|| "?".to_owned());
    let stage = &api.stage;
    let _ = writeln!(
        text,
        "WebSocket API {} (stage {stage}, {}):",
        api.resource, api.selection
    );
    let _ = writeln!(
        text,
        "  connect     ws://{addr}/?token=<JWT>   (or ws://{addr}/{stage}, the path AWS uses)"
    );
    let width = api.routes.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for route in &api.routes {
        let two_way = if route.two_way {
            "   (route response: the function's body goes back to the client)"
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "  {key:<width$}  -> {function}{two_way}",
            key = route.key,
            function = route.function
        );
    }
    let _ = writeln!(
        text,
        "  @connections http://{addr}/{stage}   (WS_ENDPOINT for the SDK; /@connections without the stage works too)"
    );
    let _ = writeln!(
        text,
        "  limits      frames {} KiB, messages {} KiB (else close 1009), no binary frames (1003); \
         idle {}, at most {} per connection (1001)",
        FRAME_LIMIT / 1024,
        MESSAGE_LIMIT / 1024,
        schedule::human(timers.idle),
        schedule::human(timers.max_duration),
    );
}
