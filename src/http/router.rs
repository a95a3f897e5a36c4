//! The routes, as a plain match on the path and then on the method.
//!
//! | Method | Path | Handler |
//! |---|---|---|
//! | POST | `/register` | [`account::register`] |
//! | GET | `/verify-email?token=…` | [`account::verify_email`] |
//! | POST | `/resend-verification` | [`account::resend_verification`] |
//! | POST | `/login` | [`session::login`] |
//! | POST | `/refresh` | [`session::refresh`] |
//! | POST | `/logout` | [`session::logout`] |
//! | POST | `/password/forgot` | [`password::forgot`] |
//! | POST | `/password/reset` | [`password::reset`] |
//! | POST | `/password/change` (Bearer access token) | [`password::change`] |
//! | GET | `/.well-known/jwks.json` | [`keys::jwks`] |
//! | GET | `/healthz`, `/readyz`, `/metrics` | [`health`] |
//!
//! `HEAD` is served wherever `GET` is; a known path with another method gets `405` + `Allow`.

use hyper::body::Incoming;
use hyper::{Method, Request};

use super::{Problem, Response};
use crate::app::State;
use crate::handlers::{account, health, keys, password, session};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Register,
    VerifyEmail,
    ResendVerification,
    Login,
    Refresh,
    Logout,
    PasswordForgot,
    PasswordReset,
    PasswordChange,
    Jwks,
    Healthz,
    Readyz,
    Metrics,
}

impl Route {
    /// Every route, for documentation checks.
    pub const ALL: [Route; 13] = [
        Route::Register,
        Route::VerifyEmail,
        Route::ResendVerification,
        Route::Login,
        Route::Refresh,
        Route::Logout,
        Route::PasswordForgot,
        Route::PasswordReset,
        Route::PasswordChange,
        Route::Jwks,
        Route::Healthz,
        Route::Readyz,
        Route::Metrics,
    ];

    /// The path this route answers.
    pub fn path(self) -> &'static str {
        match self {
            Route::Register => "/register",
            Route::VerifyEmail => "/verify-email",
            Route::ResendVerification => "/resend-verification",
            Route::Login => "/login",
            Route::Refresh => "/refresh",
            Route::Logout => "/logout",
            Route::PasswordForgot => "/password/forgot",
            Route::PasswordReset => "/password/reset",
            Route::PasswordChange => "/password/change",
            Route::Jwks => "/.well-known/jwks.json",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
        }
    }

    pub fn from_path(path: &str) -> Option<Route> {
        Some(match path {
            "/register" => Route::Register,
            "/verify-email" => Route::VerifyEmail,
            "/resend-verification" => Route::ResendVerification,
            "/login" => Route::Login,
            "/refresh" => Route::Refresh,
            "/logout" => Route::Logout,
            "/password/forgot" => Route::PasswordForgot,
            "/password/reset" => Route::PasswordReset,
            "/password/change" => Route::PasswordChange,
            "/.well-known/jwks.json" => Route::Jwks,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            _ => return None,
        })
    }

    /// The value of `Allow` (and of a preflight's allowed methods).
    pub fn allow(self) -> &'static str {
        if self.is_get() {
            "GET, HEAD, OPTIONS"
        } else {
            "POST, OPTIONS"
        }
    }

    fn is_get(self) -> bool {
        matches!(
            self,
            Route::VerifyEmail | Route::Jwks | Route::Healthz | Route::Readyz | Route::Metrics
        )
    }

    /// Whether `method` is served here (OPTIONS is answered before routing).
    pub fn accepts(self, method: &Method) -> bool {
        if self.is_get() {
            method == Method::GET || method == Method::HEAD
        } else {
            method == Method::POST
        }
    }

    /// The label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Route::Register => "register",
            Route::VerifyEmail => "verify_email",
            Route::ResendVerification => "resend_verification",
            Route::Login => "login",
            Route::Refresh => "refresh",
            Route::Logout => "logout",
            Route::PasswordForgot => "password_forgot",
            Route::PasswordReset => "password_reset",
            Route::PasswordChange => "password_change",
            Route::Jwks => "jwks",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
        }
    }
}

/// Runs the handler of `route`; the method has been checked.
pub async fn dispatch(
    state: &State,
    route: Route,
    req: Request<Incoming>,
) -> Result<Response, Problem> {
    match route {
        Route::Register => account::register(state, req).await,
        Route::VerifyEmail => account::verify_email(state, req).await,
        Route::ResendVerification => account::resend_verification(state, req).await,
        Route::Login => session::login(state, req).await,
        Route::Refresh => session::refresh(state, req).await,
        Route::Logout => session::logout(state, req).await,
        Route::PasswordForgot => password::forgot(state, req).await,
        Route::PasswordReset => password::reset(state, req).await,
        Route::PasswordChange => password::change(state, req).await,
        Route::Jwks => Ok(keys::jwks(state)),
        Route::Healthz => Ok(health::healthz()),
        Route::Readyz => health::readyz(state).await,
        Route::Metrics => Ok(health::metrics(state).await),
    }
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn every_route_is_found_by_its_path() {
        for route in Route::ALL {
            assert_eq!(Route::from_path(route.path()), Some(route));
        }
        assert_eq!(Route::from_path("/nope"), None);
    }
}
