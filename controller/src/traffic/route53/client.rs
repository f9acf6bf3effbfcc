//! The `aws-sdk-route53` client: credentials from the standard AWS chain
//! (environment, profile, web identity, container, instance metadata) or
//! given ones for tests, an endpoint override for test servers, bounded
//! timeouts, and the SDK's own retries off — [`super::retry`] decides.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_route53::Client;
use aws_sdk_route53::config::{Credentials, Region};

use crate::config::Route53;

/// Connecting to the API endpoint may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One attempt of one call may take this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// A client with credentials from the standard AWS chain.
pub async fn from_chain(cfg: &Route53) -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.aws_region.clone()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .load()
        .await;
    let mut b = aws_sdk_route53::config::Builder::from(&shared);
    if let Some(endpoint) = &cfg.endpoint {
        b = b.endpoint_url(endpoint);
    }
    Client::from_conf(b.build())
}

/// A client with fixed credentials (tests against moto, which routes by
/// the signing header, so some must be present).
pub fn with_credentials(cfg: &Route53, credentials: Credentials) -> Client {
    let mut b = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(cfg.aws_region.clone()))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts());
    if let Some(endpoint) = &cfg.endpoint {
        b = b.endpoint_url(endpoint);
    }
    Client::from_conf(b.build())
}
