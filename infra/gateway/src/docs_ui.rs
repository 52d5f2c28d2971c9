//! `/_local/docs`: a readable reference page for the API's OpenAPI document, which the API itself
//! serves at `GET /openapi.json`. The page is Swagger UI (`swagger-ui-dist` from the npm
//! registry), installed by `infra/run-local` into `infra/gateway/docs-ui/node_modules` and
//! served from that folder (`--docs-ui`), so nothing is fetched when the page loads. "Authorize"
//! takes a token from `infra/token`, and "Try it out" calls the local API through this gateway.
//!
//! Only the files the page needs are served, by name; anything else under `/_local/docs/` is a
//! 404, so the folder's other contents (and paths such as `../`) never are.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};

/// The page's own files: name and content type.
const ASSETS: [(&str, &str); 4] = [
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    (
        "swagger-ui-standalone-preset.js",
        "text/javascript; charset=utf-8",
    ),
    ("favicon-32x32.png", "image/png"),
];

/// The page: Swagger UI pointed at the API's own document.
const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Pulso API (local)</title>
  <link rel="stylesheet" href="/_local/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/_local/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/_local/docs/swagger-ui-bundle.js"></script>
  <script src="/_local/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      displayRequestDuration: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
    });
  </script>
</body>
</html>
"##;

/// What `/_local/docs` answers when Swagger UI is not installed.
const MISSING: &str = "The API reference page needs swagger-ui-dist: `npm ci --ignore-scripts \
     --prefix infra/gateway/docs-ui` (infra/run-local does it), then start the gateway with \
     `--docs-ui infra/gateway/docs-ui/node_modules/swagger-ui-dist`. The document itself is at \
     /openapi.json.\n";

/// The routes of the reference page; `dir` is `swagger-ui-dist`'s folder, if installed.
pub fn router(dir: Option<PathBuf>) -> Router {
    Router::new()
        .route("/_local/docs", get(page))
        .route("/_local/docs/", get(page))
        .route("/_local/docs/{file}", get(asset))
        .with_state(Arc::new(dir))
}

async fn page(State(dir): State<Arc<Option<PathBuf>>>) -> Response {
    match dir.as_ref() {
        Some(_) => Html(PAGE).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, MISSING).into_response(),
    }
}

async fn asset(State(dir): State<Arc<Option<PathBuf>>>, Path(file): Path<String>) -> Response {
    let Some((name, content_type)) = ASSETS.iter().find(|(name, _)| *name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(dir) = dir.as_ref() else {
        return (StatusCode::SERVICE_UNAVAILABLE, MISSING).into_response();
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, *content_type),
                // The files change only with the pinned version; a reload should still pick
                // up a reinstall.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(error) => {
            tracing::warn!(file = %name, %error, "a reference page file could not be read");
            (StatusCode::SERVICE_UNAVAILABLE, MISSING).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (StatusCode, String, String) {
        let response = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_files_are_served_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("pulso-docs-ui-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("swagger-ui-bundle.js"), "/* ui */").expect("write");
        std::fs::write(dir.join("secret.txt"), "no").expect("write");
        let app = router(Some(dir.clone()));

        let (status, content_type, body) = get(&app, "/_local/docs").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.starts_with("text/html"));
        assert!(body.contains(r#"url: "/openapi.json""#));
        let (status, content_type, body) = get(&app, "/_local/docs/swagger-ui-bundle.js").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "/* ui */"));
        assert!(content_type.starts_with("text/javascript"));
        for refused in [
            "/_local/docs/secret.txt",
            "/_local/docs/..%2Fsecret.txt",
            "/_local/docs/package.json",
        ] {
            assert_eq!(
                get(&app, refused).await.0,
                StatusCode::NOT_FOUND,
                "{refused}"
            );
        }
        // Listed but missing from the folder: says what to install.
        let (status, _, body) = get(&app, "/_local/docs/swagger-ui.css").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("swagger-ui-dist"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn without_swagger_ui_the_page_says_how_to_install_it() {
        let (status, _, body) = get(&router(None), "/_local/docs").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("infra/run-local"));
    }
}
