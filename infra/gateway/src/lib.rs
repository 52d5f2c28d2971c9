//! Pulso's local gateway: stands in for API Gateway (HTTP API, WebSocket API and its
//! @connections API) and for EventBridge schedules in development, invoking the functions of
//! the SAM template under `cargo lambda watch`.

pub mod apigw_v2;
pub mod cli;
pub mod cors;
pub mod headers;
pub mod http_api;
pub mod invoke;
pub mod proxy;
pub mod reload;
pub mod routes;
pub mod schedule;
pub mod template;
pub mod websocket;

use std::fmt::Write as _;
use std::future::{Future, IntoFuture};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::cli::{Config, ScheduleMode};
use crate::http_api::HttpApi;
use crate::invoke::Invoker;
use crate::proxy::{ProxyError, Upstream};
use crate::schedule::expression::Timing;
use crate::schedule::{Scheduler, SchedulerOptions};
use crate::template::{Template, TemplateError};
use crate::websocket::WebSocketApi;
use crate::websocket::server::{FRAME_LIMIT, MESSAGE_LIMIT, Timers, WsServer};

/// How long shutdown waits for WebSocket clients to close and `$disconnect` to run.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A gateway bound to its ports, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    http_api: Arc<HttpApi>,
    websocket: Option<(TcpListener, Arc<WsServer>)>,
    scheduler: Arc<Scheduler>,
    notes: Vec<String>,
}

impl Gateway {
    /// Reads the template and binds the listen addresses: every configuration mistake surfaces
    /// here, before the first request.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let template = load_template(config)?;
        let upstream = Upstream::new(config.watch.clone(), config.timeout)?;
        let invoker = Invoker::new(config.watch.clone())?;
        let listener = bind(config.listen, "the HTTP API").await?;
        let websocket = match template.websocket {
            None => None,
            Some(api) => {
                let ws_listener = bind(config.ws_listen, "the WebSocket API (--ws-listen)").await?;
                let local_addr = ws_listener
                    .local_addr()
                    .map_err(|source| StartError::Bind {
                        addr: config.ws_listen,
                        what: "the WebSocket API (--ws-listen)",
                        source,
                    })?;
                let timers = Timers {
                    idle: config.ws_idle_timeout,
                    max_duration: config.ws_max_duration,
                };
                let server =
                    WsServer::new(api, invoker.clone(), timers, config.timeout, local_addr);
                Some((ws_listener, Arc::new(server)))
            }
        };
        let scheduler = Scheduler::new(
            template.schedules,
            invoker,
            SchedulerOptions {
                automatic: config.schedules == ScheduleMode::On,
                speed: config.schedule_speed,
                tick_now: config.tick_now,
                region: config.region.clone(),
                timeout: config.timeout,
            },
        );
        Ok(Self {
            listener,
            http_api: Arc::new(HttpApi::new(template.routes, template.cors, upstream)),
            websocket,
            scheduler: Arc::new(scheduler),
            notes: template.notes,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where the WebSocket API listens; `None` when the template declares none.
    pub fn ws_local_addr(&self) -> Option<SocketAddr> {
        let (listener, _) = self.websocket.as_ref()?;
        listener.local_addr().ok()
    }

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
        let _ = writeln!(text, "Functions: {}", self.http_api.upstream().base());
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

    /// The HTTP port: the `/_local` control endpoints, then every HTTP API route.
    pub fn app(&self) -> Router {
        schedule::router(Arc::clone(&self.scheduler))
            .merge(http_api::router(Arc::clone(&self.http_api)))
    }

    /// The WebSocket port's app, when the template has a WebSocket API.
    pub fn ws_app(&self) -> Option<Router> {
        let (_, server) = self.websocket.as_ref()?;
        Some(websocket::server::router(Arc::clone(server)))
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish, closes WebSocket
    /// connections (1001) and waits briefly for their `$disconnect`.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self.app();
        let ws_app = self.ws_app();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let wait_for_stop = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };

        let timers = self.scheduler.start();
        let http = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(wait_for_stop(stopped.clone()))
        .into_future();
        let (ws_listener, ws_server) = match self.websocket {
            Some((listener, server)) => (Some(listener), Some(server)),
            None => (None, None),
        };
        let ws = async move {
            match (ws_listener, ws_app) {
                (Some(listener), Some(app)) => {
                    axum::serve(
                        listener,
                        app.into_make_service_with_connect_info::<SocketAddr>(),
                    )
                    .with_graceful_shutdown(wait_for_stop(stopped))
                    .await
                }
                _ => Ok(()),
            }
        };
        let served = tokio::try_join!(http, ws);

        for timer in timers {
            timer.abort();
        }
        if let Some(server) = ws_server {
            server.close_all(SHUTDOWN_GRACE).await;
        }
        served.map(|_| ())
    }
}

fn load_template(config: &Config) -> Result<Template, StartError> {
    template::load(&config.template).map_err(|source| StartError::Template {
        path: config.template.clone(),
        source,
    })
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, what, source })
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

/// The `WS_URL=` and `WS_ENDPOINT=` lines for `.dev/env`, or a comment when WebSocket is off.
pub fn env_lines(config: &Config) -> Result<String, StartError> {
    let template = load_template(config)?;
    Ok(match template.websocket {
        Some(api) => {
            let addr = display_addr(config.ws_listen);
            format!(
                "WS_URL=ws://{addr}/{stage}\nWS_ENDPOINT=http://{addr}/{stage}\n",
                stage = api.stage
            )
        }
        None => "# WebSocket off: the template declares no WebSocket API\n".to_owned(),
    })
}

/// An address a client on this machine can use: `0.0.0.0` and `::` become loopback.
fn display_addr(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port()).to_string()
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Plain-text logs on stderr; `RUST_LOG` overrides the `info` default.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot load the SAM template {path}")]
    Template {
        path: PathBuf,
        #[source]
        source: TemplateError,
    },
    #[error(transparent)]
    Upstream(#[from] ProxyError),
    #[error("cannot listen on {addr} for {what}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
