//! Pulso's local gateway: stands in for API Gateway (HTTP API, WebSocket API and its
//! @connections API), for EventBridge schedules and for Lambda itself in development: it runs
//! the functions of the SAM template as processes speaking the Lambda Runtime API
//! (`runtime`), and rebuilds them after an edit (`reload`).

pub mod apigw_v2;
pub mod cli;
pub mod cors;
pub mod docs_ui;
pub mod functions_api;
pub mod headers;
pub mod http_api;
pub mod invoke;
pub mod lambda_api;
pub mod reload;
pub mod routes;
pub mod runtime;
pub mod schedule;
mod summary;
pub mod template;
pub mod websocket;

/// The import-cycle check, shared with `shared` (one copy of the parser).
#[cfg(test)]
#[path = "../../../shared/src/layers.rs"]
mod layers;

use std::future::{Future, IntoFuture};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::cli::{Config, ScheduleMode};
use crate::http_api::HttpApi;
use crate::invoke::{InvokeApi, Invoker};
use crate::runtime::{FunctionLog, Host, HostOptions};
use crate::schedule::{Scheduler, SchedulerOptions};
use crate::template::{Template, TemplateError};
use crate::websocket::server::{Timers, WsServer};

/// How long shutdown waits for WebSocket clients to close and `$disconnect` to run.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A gateway bound to its ports, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    /// The runtime host and its Runtime API listener; `None` with `--invoke-url`.
    runtime: Option<(Arc<Host>, TcpListener)>,
    rebuild: Option<reload::ReloadConfig>,
    http_api: Arc<HttpApi>,
    websocket: Option<(TcpListener, Arc<WsServer>)>,
    scheduler: Arc<Scheduler>,
    /// Lambda's Invoke API for the functions, and how long a synchronous call waits.
    invoker: Invoker,
    timeout: Duration,
    docs_ui: Option<PathBuf>,
    notes: Vec<String>,
}

impl Gateway {
    /// Reads the template and binds the listen addresses: every configuration mistake surfaces
    /// here, before the first request.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let template = load_template(config)?;
        let (runtime, invoker) = match &config.invoke_url {
            Some(url) => {
                let api = InvokeApi::new(url.clone()).map_err(StartError::Client)?;
                (None, Invoker::Remote(api))
            }
            None => {
                let (host, listener) = start_host(config, &template).await?;
                let invoker = Invoker::Host(Arc::clone(&host));
                (Some((host, listener)), invoker)
            }
        };
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
            invoker.clone(),
            SchedulerOptions {
                automatic: config.schedules == ScheduleMode::On,
                speed: config.schedule_speed,
                tick_now: config.tick_now,
                region: config.region.clone(),
                timeout: config.timeout,
            },
        );
        let rebuild =
            (config.rebuild && config.invoke_url.is_none()).then(|| rebuild_config(config));
        Ok(Self {
            listener,
            runtime,
            rebuild,
            http_api: Arc::new(HttpApi::new(
                template.routes,
                template.cors,
                invoker.clone(),
                config.timeout,
            )),
            invoker,
            timeout: config.timeout,
            websocket,
            scheduler: Arc::new(scheduler),
            docs_ui: config.docs_ui.clone(),
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

    /// The HTTP port: the `/_local` control endpoints and reference page, Lambda's Invoke API,
    /// then every HTTP API route.
    pub fn app(&self) -> Router {
        let mut app = schedule::router(Arc::clone(&self.scheduler))
            .merge(docs_ui::router(self.docs_ui.clone()))
            .merge(lambda_api::router(self.invoker.clone(), self.timeout));
        if let Some((host, _)) = &self.runtime {
            app = app.merge(functions_api::router(
                Arc::clone(host),
                self.http_api.routes(),
            ));
        }
        app.merge(http_api::router(Arc::clone(&self.http_api)))
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

        let host = self.runtime.as_ref().map(|(host, _)| Arc::clone(host));
        let mut background = Vec::new();
        let mut reloader = None;
        if let Some((host, listener)) = self.runtime {
            let runtime_app = runtime::router(Arc::clone(&host));
            background.push(tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, runtime_app).await {
                    tracing::error!(%error, "the Runtime API stopped");
                }
            }));
            background.push(tokio::spawn(Arc::clone(&host).reap_idle_forever()));
            if let Some(config) = self.rebuild {
                reloader = Some(start_reloader(config, host)?);
            }
        }
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
        drop(reloader);
        if let Some(host) = host {
            host.shutdown();
        }
        for task in background {
            task.abort();
        }
        served.map(|_| ())
    }
}

/// Binds the Runtime API and creates the host that runs the template's functions.
async fn start_host(
    config: &Config,
    template: &Template,
) -> Result<(Arc<Host>, TcpListener), StartError> {
    let what = "the Runtime API (--runtime-listen)";
    let listener = bind(config.runtime_listen, what).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.runtime_listen,
        what,
        source,
    })?;
    let host = Host::new(template.functions.clone(), host_options(config)?, addr);
    Ok((Arc::new(host), listener))
}

fn host_options(config: &Config) -> Result<HostOptions, StartError> {
    let log = match &config.functions_log {
        None => FunctionLog::stderr(),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| StartError::FunctionsLog {
                    path: path.clone(),
                    source,
                })?;
            FunctionLog::new(Box::new(file))
        }
    };
    Ok(HostOptions {
        binaries: config.functions_dir.clone(),
        max_instances: config.max_instances,
        idle_reap: config.idle_reap,
        region: config.region.clone(),
        log,
    })
}

/// Rebuild from the workspace the template sits in: its sources, its `cargo build`.
fn rebuild_config(config: &Config) -> reload::ReloadConfig {
    let workspace = config
        .template
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    reload::ReloadConfig {
        binaries: config.functions_dir.clone(),
        watched: [
            "functions",
            "shared",
            "migrations",
            "Cargo.toml",
            "Cargo.lock",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect(),
        build: ["cargo", "build", "--workspace", "--bins"]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        debounce: Duration::from_millis(300),
        workspace,
    }
}

fn start_reloader(
    config: reload::ReloadConfig,
    host: Arc<Host>,
) -> std::io::Result<reload::Reloader> {
    let functions: Vec<String> = host.specs().map(|s| s.name.clone()).collect();
    let recycled = Arc::clone(&host);
    reload::spawn(config, functions, move |changed| recycled.recycle(&changed))
        .map_err(std::io::Error::other)
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
    #[error("cannot build the HTTP client for --invoke-url")]
    Client(#[source] reqwest::Error),
    #[error("cannot open the functions' log {path}")]
    FunctionsLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} for {what}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}
