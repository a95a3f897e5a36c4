//! What every handler can reach: the services, and the few prepared values handlers serve.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::HeaderValue;

use crate::http::admin_secret::AdminSecret;
use crate::http::client::TrustedProxies;
use crate::http::cors::Cors;
use crate::metrics::Metrics;
use crate::router::Serving;
use crate::service::{
    AccessTokens, Accounts, Admin, ClientLimits, EmailChanges, Health, Passwords, Sessions,
};

/// A document served from memory as it was prepared at start-up (the JWKS, discovery), and
/// its `Cache-Control`.
pub struct Prepared {
    pub body: Bytes,
    pub cache_control: HeaderValue,
}

pub struct State {
    pub accounts: Arc<Accounts>,
    pub sessions: Sessions,
    pub passwords: Arc<Passwords>,
    pub email_changes: Arc<EmailChanges>,
    pub admin: Admin,
    pub access_tokens: AccessTokens,
    pub health: Health,
    pub client_limits: ClientLimits,
    /// Who a request's client is, behind the proxies trusted to say.
    pub trusted_proxies: TrustedProxies,
    pub jwks: Prepared,
    /// OpenID Connect / RFC 8414 discovery metadata.
    pub discovery: Prepared,
    pub cors: Cors,
    pub metrics: Arc<Metrics>,
    /// Which listeners and APIs are served (operator routes move to the admin listener).
    pub serving: Serving,
    /// The admin API's secret, when it is on.
    pub admin_secret: Option<AdminSecret>,
    /// Longest a request may take, body reading included; a stalled client is cut off.
    pub request_timeout: std::time::Duration,
}
