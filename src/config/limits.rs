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
    /// Failed logins per address before `429`.
    pub login_failures: RateLimit,
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
        LimitConfig {
            resend,
            forgot: resend,
            login_failures,
        }
    }
}
