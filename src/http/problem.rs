//! RFC 9457 problem details: the one place where errors become responses.
//!
//! Every failure a client can see has a named constructor with a stable `code`. Server-side
//! failures (`unavailable`, `unexpected`) answer opaquely and log their cause here.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::StatusCode;
use serde::Serialize;

use super::Response;
use crate::domain::{EmailError, PasswordError as PasswordFormatError};
use crate::service::{
    AccountError, AdminError, BearerError, ClientLimitError, EmailChangeError, PasswordError,
    ServerError, SessionError,
};

/// Marks a response that shed load (a full CPU pool), for `authd_shed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shed;

/// An error response under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub retry_after: Option<u64>,
    /// The methods a `405` lists in `Allow`.
    pub allow: Option<String>,
    /// Adds `WWW-Authenticate: Bearer …` (RFC 6750) to a 401 about an access token.
    pub bearer_challenge: bool,
    /// The request was shed for lack of capacity.
    pub shed: bool,
    /// Adds `Connection: close`: the request's body was left unread, so the connection
    /// cannot carry another request.
    pub close: bool,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'static str,
}

/// Whole seconds for `Retry-After`, rounded up and never 0 (0 would invite an instant retry).
fn retry_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            allow: None,
            bearer_challenge: false,
            shed: false,
            close: false,
        }
    }

    /// The same problem, closing the connection after it.
    pub fn closing(mut self) -> Problem {
        self.close = true;
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn invalid_email(e: EmailError) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_email", e.to_string())
    }

    pub fn invalid_password(e: PasswordFormatError) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_password", e.to_string())
    }

    pub fn invalid_token(status: StatusCode) -> Problem {
        Problem::new(
            status,
            "invalid_token",
            "the token is unknown, expired, revoked or already used",
        )
    }

    /// A missing or unusable bearer access token.
    pub fn invalid_access_token() -> Problem {
        let mut p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a valid access token is required (Authorization: Bearer …)",
        );
        p.bearer_challenge = true;
        p
    }

    /// A request to the admin API without its secret.
    pub fn admin_secret_required() -> Problem {
        let mut p = Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the admin secret is required (Authorization: Bearer …)",
        );
        p.bearer_challenge = true;
        p
    }

    pub fn account_disabled() -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "account_disabled",
            "this account is disabled",
        )
    }

    pub fn email_taken() -> Problem {
        Problem::new(
            StatusCode::CONFLICT,
            "email_taken",
            "an account with this email already exists",
        )
    }

    fn wrong_password() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the password is wrong",
        )
    }

    pub fn invalid_credentials() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong email or password",
        )
    }

    pub fn rate_limited(retry_after: Duration) -> Problem {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many attempts; try again later",
        );
        p.retry_after = Some(retry_secs(retry_after));
        p
    }

    pub fn payload_too_large() -> Problem {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is larger than 16 KiB",
        )
    }

    pub fn unsupported_media_type() -> Problem {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request body must be application/json",
        )
    }

    pub fn not_found() -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    pub fn method_not_allowed(allow: String) -> Problem {
        let mut p = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("allowed methods: {allow}"),
        );
        p.allow = Some(allow);
        p
    }

    /// A CPU pool is full: shed rather than queue without limit.
    pub fn overloaded() -> Problem {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the server is busy; try again shortly",
        );
        p.retry_after = Some(1);
        p.shed = true;
        p
    }

    /// A dependency failed. The cause is logged, never sent.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> Problem {
        tracing::warn!(%cause, "dependency unavailable");
        Problem::unavailable_unlogged()
    }

    /// A dependency failed, and what failed is logged elsewhere, once: not per request.
    pub fn unavailable_unlogged() -> Problem {
        let mut p = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a dependency is unavailable; try again shortly",
        );
        p.retry_after = Some(1);
        p
    }

    /// A bug. The cause is logged, never sent.
    pub fn unexpected(cause: &dyn std::fmt::Display) -> Problem {
        tracing::error!(%cause, "unexpected error");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an unexpected error occurred",
        )
    }

    pub fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Body {
            kind: "about:blank",
            title,
            status: self.status.as_u16(),
            detail: &self.detail,
            code: self.code,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = hyper::Response::new(Full::new(Bytes::from(json)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(ALLOW, allow);
        }
        if self.bearer_challenge {
            headers.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        if self.close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.shed {
            response.extensions_mut().insert(Shed);
        }
        response
    }
}

impl From<ServerError> for Problem {
    fn from(e: ServerError) -> Problem {
        match e {
            ServerError::Overloaded => Problem::overloaded(),
            ServerError::Unavailable(cause) => Problem::unavailable(&cause),
            ServerError::Unexpected(cause) => Problem::unexpected(&cause),
        }
    }
}

impl From<BearerError> for Problem {
    fn from(e: BearerError) -> Problem {
        match e {
            BearerError::Invalid => Problem::invalid_access_token(),
            BearerError::Disabled => Problem::account_disabled(),
            // The revocation poller logs the store's failure.
            BearerError::Unavailable(_) => Problem::unavailable_unlogged(),
        }
    }
}

impl From<ClientLimitError> for Problem {
    fn from(e: ClientLimitError) -> Problem {
        match e {
            ClientLimitError::RateLimited { retry_after } => Problem::rate_limited(retry_after),
            ClientLimitError::Server(e) => e.into(),
        }
    }
}

impl From<AccountError> for Problem {
    fn from(e: AccountError) -> Problem {
        match e {
            AccountError::EmailTaken => Problem::email_taken(),
            AccountError::WrongPassword => Problem::wrong_password(),
            AccountError::InvalidToken => Problem::invalid_token(StatusCode::BAD_REQUEST),
            AccountError::NoSuchAccount => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no account has this email",
            ),
            AccountError::Gone => Problem::invalid_access_token(),
            AccountError::RateLimited { retry_after } => Problem::rate_limited(retry_after),
            AccountError::Server(e) => e.into(),
        }
    }
}

impl From<SessionError> for Problem {
    fn from(e: SessionError) -> Problem {
        match e {
            SessionError::InvalidCredentials => Problem::invalid_credentials(),
            SessionError::EmailNotVerified => Problem::new(
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "verify your email address before logging in",
            ),
            SessionError::AccountDisabled => Problem::account_disabled(),
            SessionError::InvalidToken => Problem::invalid_token(StatusCode::UNAUTHORIZED),
            SessionError::NoSuchSession => Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no live session of yours has this id",
            ),
            SessionError::RateLimited { retry_after } => Problem::rate_limited(retry_after),
            SessionError::Server(e) => e.into(),
        }
    }
}

impl From<PasswordError> for Problem {
    fn from(e: PasswordError) -> Problem {
        match e {
            PasswordError::InvalidResetToken => Problem::invalid_token(StatusCode::BAD_REQUEST),
            PasswordError::InvalidAccessToken => Problem::invalid_access_token(),
            PasswordError::WrongPassword => Problem::wrong_password(),
            PasswordError::RateLimited { retry_after } => Problem::rate_limited(retry_after),
            PasswordError::Server(e) => e.into(),
        }
    }
}

impl From<EmailChangeError> for Problem {
    fn from(e: EmailChangeError) -> Problem {
        match e {
            EmailChangeError::InvalidAccessToken => Problem::invalid_access_token(),
            EmailChangeError::WrongPassword => Problem::wrong_password(),
            EmailChangeError::EmailTaken => Problem::email_taken(),
            EmailChangeError::InvalidToken => Problem::invalid_token(StatusCode::BAD_REQUEST),
            EmailChangeError::RateLimited { retry_after } => Problem::rate_limited(retry_after),
            EmailChangeError::Server(e) => e.into(),
        }
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Problem {
        match e {
            AdminError::NoSuchUser => {
                Problem::new(StatusCode::NOT_FOUND, "not_found", "no such user")
            }
            AdminError::Server(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::from_secs(5)), 5);
        assert_eq!(retry_secs(Duration::from_millis(5001)), 6);
    }
}
