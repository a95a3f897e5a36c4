//! The limits section: how often one address may ask for something.

use std::time::Duration;

use super::source::Reader;
use crate::service::RateLimit;

#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    /// Verification resends per address (`AUTH_RESEND_MAX` per `AUTH_RESEND_WINDOW`).
    pub resend: RateLimit,
    /// Reset requests per address: the resend settings, counted separately (SPEC §1: "like
    /// resend").
    pub forgot: RateLimit,
    /// Email changes asked per account: the resend settings, counted separately.
    pub email_change: RateLimit,
    /// Failed logins per address before `429`.
    pub login_failures: RateLimit,
    /// Requests per client address to the routes that check a password or may send an
    /// email; `None` when `AUTH_CLIENT_MAX=0`.
    pub per_client: Option<RateLimit>,
}

impl LimitConfig {
    pub(super) fn read(r: &mut Reader) -> LimitConfig {
        let resend = RateLimit {
            max: r.number("AUTH_RESEND_MAX", 3u32, (1, u32::MAX)),
            window: r.positive_duration("AUTH_RESEND_WINDOW", Duration::from_secs(3600)),
        };
        let login_failures = RateLimit {
            max: r.number("AUTH_LOGIN_MAX_FAILURES", 10u32, (1, u32::MAX)),
            window: r.positive_duration("AUTH_LOGIN_WINDOW", Duration::from_secs(15 * 60)),
        };
        let client_max = r.number("AUTH_CLIENT_MAX", 60u32, (0, u32::MAX));
        let client_window = r.positive_duration("AUTH_CLIENT_WINDOW", Duration::from_secs(60));
        LimitConfig {
            resend,
            forgot: resend,
            email_change: resend,
            login_failures,
            per_client: (client_max > 0).then_some(RateLimit {
                max: client_max,
                window: client_window,
            }),
        }
    }
}
