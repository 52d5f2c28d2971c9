//! Pulso's local gateway: stands in for API Gateway HTTP API in development, routing each request
//! by the SAM template's route table to its function under `cargo lambda watch`.

pub mod cli;
pub mod cors;
pub mod http_api;
pub mod proxy;
pub mod routes;
pub mod template;

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::cli::Config;
use crate::http_api::HttpApi;
use crate::proxy::{ProxyError, Upstream};
use crate::template::TemplateError;

/// A gateway bound to its port, ready to serve.
pub struct Gateway {
    listener: TcpListener,
    http_api: Arc<HttpApi>,
}

impl Gateway {
    /// Reads the template and binds the listen address: every configuration mistake surfaces
    /// here, before the first request.
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let template = template::load(&config.template).map_err(|source| StartError::Template {
            path: config.template.clone(),
            source,
        })?;
        let upstream = Upstream::new(config.watch.clone(), config.timeout)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            http_api: Arc::new(HttpApi::new(template.routes, template.cors, upstream)),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The route table and CORS policy, as printed at start-up.
    pub fn summary(&self) -> String {
        let mut routes: Vec<_> = self.http_api.routes().routes().iter().collect();
        routes.sort_by(|a, b| {
            (a.path.to_string(), a.method.to_string())
                .cmp(&(b.path.to_string(), b.method.to_string()))
        });
        let width = routes
            .iter()
            .map(|r| r.path.to_string().len())
            .max()
            .unwrap_or(0);
        let mut text = String::from("Routes (from the SAM template):\n");
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
        match self.http_api.cors() {
            Some(cors) => {
                let _ = writeln!(text, "CORS: {cors}");
            }
            None => text.push_str("CORS: not configured (browsers get no CORS headers)\n"),
        }
        let _ = writeln!(text, "Functions: {}", self.http_api.upstream().base());
        text
    }

    /// The axum app; later endpoints (WebSocket, @connections, schedule ticks) merge in here.
    pub fn app(&self) -> Router {
        http_api::router(Arc::clone(&self.http_api))
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self.app();
        axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
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
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
