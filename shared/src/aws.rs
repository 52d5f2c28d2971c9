//! How every AWS SDK client of Pulso is configured: HTTPS through rustls with ring (what reqwest
//! already brings, so no aws-lc to build), the region given or the SDK's own lookup (Lambda
//! sets `AWS_REGION`), and the SDK's default credential chain (the function's role) unless
//! static credentials are given — which only a local stand-in, that checks no signature, gets.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_apigatewaymanagement::config::Credentials;

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
