//! How every AWS SDK client of Pulso is configured: HTTPS through rustls with ring (what reqwest
//! already brings, so no aws-lc to build), the region given or the SDK's own lookup (Lambda
//! sets `AWS_REGION`), and the SDK's default credential chain (the function's role) unless
//! static credentials are given — which only a local stand-in, that checks no signature, gets.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_apigatewaymanagement::config::Credentials;
use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Dummy credentials for a local stand-in (the local gateway, the Cognito stand-in): the SDK
/// must sign, they check nothing. Never real keys.
pub fn local_credentials() -> Credentials {
    Credentials::new("local", "local", None, None, "pulso-local")
}

pub async fn sdk_config(region: Option<&str>, credentials: Option<Credentials>) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    if let Some(credentials) = credentials {
        loader = loader.credentials_provider(credentials);
    }
    loader.load().await
}

/// Why a call to `service` failed, in a line: the service's code and message, or the
/// connection's trouble (not the raw response the SDK's error context carries).
pub fn why<E: ProvideErrorMetadata + std::error::Error + 'static>(
    error: &SdkError<E, HttpResponse>,
    service: &str,
) -> String {
    match (error, error.code(), error.message()) {
        (SdkError::TimeoutError(_), _, _) => format!(
            "no answer in time (is there a path from the function to {service}: a VPC endpoint \
             or a NAT gateway?)"
        ),
        (_, Some(code), Some(message)) => format!("{code}: {message}"),
        (_, Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(error).to_string(),
    }
}
