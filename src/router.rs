//! The routes, as one table, and what every request goes through around them: request id
//! and its log span, CORS and preflight, method checks, the request timeout, metrics and
//! one access-log line.
//!
//! Adding a route is adding a row to [`ROUTES`]. `HEAD` is served wherever `GET` is; a
//! known path with another method gets `405` + `Allow`; `OPTIONS` is answered for every
//! known path.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, StatusCode};
use tracing::Instrument as _;

use crate::domain::Client;
use crate::handlers::{account, admin, email, gateway, health, keys, password, session, State};
use crate::http::body::PathParams;
use crate::http::problem::Shed;
use crate::http::{bearer, body, request_id, Problem, Response};

type Answer<'a> = Pin<Box<dyn Future<Output = Result<Response, Problem>> + Send + 'a>>;

/// A handler as the table holds it. It gets the request with its body already read.
pub type Handler = for<'a> fn(&'a State, body::Request) -> Answer<'a>;

/// One row of the table.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// The `route` label of metrics and logs.
    pub label: &'static str,
    /// Which listener serves it.
    pub scope: Scope,
    /// What a request must pass before the handler runs.
    pub gate: Gate,
    pub handler: Handler,
}

/// Where a route is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The public listener.
    Public,
    /// `AUTH_ADMIN_LISTEN` when it is set (the public listener then answers 404), else the
    /// public listener.
    Operator,
    /// Both listeners.
    Anywhere,
    /// The admin API: only on `AUTH_ADMIN_LISTEN`, and only when `AUTH_ADMIN_TOKEN_FILE`
    /// is set (otherwise, as on the public listener, such paths are unknown: `404`).
    Admin,
}

/// Which listeners and APIs this authd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    /// `AUTH_ADMIN_LISTEN` is set.
    pub admin_listener: bool,
    /// The admin API is on (`AUTH_ADMIN_TOKEN_FILE` is set).
    pub admin_api: bool,
}

/// The listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Public,
    Admin,
}

impl Scope {
    /// Whether a route of this scope answers on `listener`.
    fn serves(self, listener: Listener, serving: Serving) -> bool {
        match (self, listener) {
            (Scope::Anywhere, _) => true,
            (Scope::Public, Listener::Public) => true,
            (Scope::Operator, Listener::Admin) => true,
            (Scope::Operator, Listener::Public) => !serving.admin_listener,
            (Scope::Public, Listener::Admin) => false,
            (Scope::Admin, Listener::Admin) => serving.admin_api,
            (Scope::Admin, Listener::Public) => false,
        }
    }
}

/// What a request must pass before its route's handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Counted against the per-client limit (SPEC §8: the routes that check a password or
    /// may send an email).
    PerClient,
    /// Carries the admin secret (SPEC §10).
    AdminSecret,
}

/// `handler!(module::function)`: an `async fn (&State, Request) -> Result<Response, Problem>`
/// as a table entry.
macro_rules! handler {
    ($f:path) => {
        |state, req| Box::pin($f(state, req))
    };
}

/// Every route authd serves.
///
/// `/authz/{*path}` takes any method because Envoy's `ext_authz` asks with the original
/// request's method and appends its path to the configured prefix.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    Route { method: Method::POST, path: "/register", label: "register", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(account::register) },
    Route { method: Method::GET, path: "/verify-email", label: "verify_email", scope: Scope::Public, gate: Gate::Open, handler: handler!(account::verify_email) },
    Route { method: Method::POST, path: "/resend-verification", label: "resend_verification", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(account::resend_verification) },
    Route { method: Method::POST, path: "/login", label: "login", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(session::login) },
    Route { method: Method::POST, path: "/refresh", label: "refresh", scope: Scope::Public, gate: Gate::Open, handler: handler!(session::refresh) },
    Route { method: Method::POST, path: "/logout", label: "logout", scope: Scope::Public, gate: Gate::Open, handler: handler!(session::logout) },
    Route { method: Method::POST, path: "/password/forgot", label: "password_forgot", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(password::forgot) },
    Route { method: Method::POST, path: "/password/reset", label: "password_reset", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(password::reset) },
    Route { method: Method::POST, path: "/password/change", label: "password_change", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(password::change) },
    Route { method: Method::POST, path: "/email/change", label: "email_change", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(email::change) },
    Route { method: Method::GET, path: "/email/confirm", label: "email_confirm", scope: Scope::Public, gate: Gate::Open, handler: handler!(email::confirm) },
    Route { method: Method::POST, path: "/account/delete", label: "account_delete", scope: Scope::Public, gate: Gate::PerClient, handler: handler!(account::delete) },
    Route { method: Method::GET, path: "/.well-known/jwks.json", label: "jwks", scope: Scope::Public, gate: Gate::Open, handler: handler!(keys::jwks) },
    Route { method: Method::GET, path: "/.well-known/openid-configuration", label: "openid_configuration", scope: Scope::Public, gate: Gate::Open, handler: handler!(keys::discovery) },
    Route { method: Method::GET, path: "/.well-known/oauth-authorization-server", label: "oauth_authorization_server", scope: Scope::Public, gate: Gate::Open, handler: handler!(keys::discovery) },
    Route { method: Method::GET, path: "/authz", label: "authz", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::authz) },
    Route { method: Method::GET, path: "/authz/{*path}", label: "authz_forwarded", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::authz) },
    Route { method: Method::POST, path: "/authz/{*path}", label: "authz_forwarded", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::authz) },
    Route { method: Method::PUT, path: "/authz/{*path}", label: "authz_forwarded", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::authz) },
    Route { method: Method::PATCH, path: "/authz/{*path}", label: "authz_forwarded", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::authz) },
    Route { method: Method::DELETE, path: "/authz/{*path}", label: "authz_forwarded", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::authz) },
    Route { method: Method::OPTIONS, path: "/authz/{*path}", label: "authz_forwarded", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::authz) },
    Route { method: Method::GET, path: "/userinfo", label: "userinfo", scope: Scope::Public, gate: Gate::Open, handler: handler!(gateway::userinfo) },
    Route { method: Method::GET, path: "/sessions", label: "sessions_list", scope: Scope::Public, gate: Gate::Open, handler: handler!(session::list_sessions) },
    Route { method: Method::DELETE, path: "/sessions", label: "sessions_end_all", scope: Scope::Public, gate: Gate::Open, handler: handler!(session::end_sessions) },
    Route { method: Method::DELETE, path: "/sessions/{id}", label: "session_end", scope: Scope::Public, gate: Gate::Open, handler: handler!(session::end_session) },
    Route { method: Method::GET, path: "/healthz", label: "healthz", scope: Scope::Anywhere, gate: Gate::Open, handler: handler!(health::healthz) },
    Route { method: Method::GET, path: "/readyz", label: "readyz", scope: Scope::Anywhere, gate: Gate::Open, handler: handler!(health::readyz) },
    Route { method: Method::GET, path: "/metrics", label: "metrics", scope: Scope::Operator, gate: Gate::Open, handler: handler!(health::metrics) },
    Route { method: Method::GET, path: "/admin/users", label: "admin_users", scope: Scope::Admin, gate: Gate::AdminSecret, handler: handler!(admin::find_by_email) },
    Route { method: Method::GET, path: "/admin/users/{id}", label: "admin_user", scope: Scope::Admin, gate: Gate::AdminSecret, handler: handler!(admin::find) },
    Route { method: Method::DELETE, path: "/admin/users/{id}", label: "admin_user", scope: Scope::Admin, gate: Gate::AdminSecret, handler: handler!(admin::delete) },
    Route { method: Method::POST, path: "/admin/users/{id}/disable", label: "admin_user_disable", scope: Scope::Admin, gate: Gate::AdminSecret, handler: handler!(admin::disable) },
    Route { method: Method::POST, path: "/admin/users/{id}/enable", label: "admin_user_enable", scope: Scope::Admin, gate: Gate::AdminSecret, handler: handler!(admin::enable) },
    Route { method: Method::POST, path: "/admin/users/{id}/sessions/revoke", label: "admin_user_sessions_revoke", scope: Scope::Admin, gate: Gate::AdminSecret, handler: handler!(admin::revoke_sessions) },
    Route { method: Method::POST, path: "/admin/users/{id}/verify", label: "admin_user_verify", scope: Scope::Admin, gate: Gate::AdminSecret, handler: handler!(admin::verify) },
];

/// What the table says about a request.
enum Lookup {
    Unknown,
    /// A known path, asked with a method it does not serve (or `OPTIONS`).
    Methods {
        label: &'static str,
        allow: String,
    },
    Route(&'static Route, PathParams),
}

/// Matches `path` against a route's pattern, where a `{name}` segment matches any one
/// non-empty segment and a last `{*name}` segment the rest of the path (empty for a
/// trailing `/`); the values of those segments, in order.
fn matches(pattern: &str, path: &str) -> Option<PathParams> {
    let mut params = Vec::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(PathParams(params)),
            (Some(p), Some(s)) if p.starts_with("{*") && p.ends_with('}') => {
                let rest: Vec<&str> = std::iter::once(s).chain(path_segments).collect();
                params.push(rest.join("/"));
                return Some(PathParams(params));
            }
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {
                params.push(s.to_string());
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

fn find(method: &Method, path: &str, listener: Listener, serving: Serving) -> Lookup {
    let mut rows = ROUTES
        .iter()
        .filter(|r| r.scope.serves(listener, serving))
        .filter_map(|r| matches(r.path, path).map(|params| (r, params)))
        .peekable();
    let Some(first) = rows.peek().map(|(r, _)| r.label) else {
        return Lookup::Unknown;
    };
    let mut allow = Vec::new();
    for (row, params) in rows {
        if row.method == method || (method == Method::HEAD && row.method == Method::GET) {
            return Lookup::Route(row, params);
        }
        allow.push(row.method.as_str());
        if row.method == Method::GET {
            allow.push("HEAD");
        }
    }
    allow.push("OPTIONS");
    Lookup::Methods {
        label: first,
        allow: allow.join(", "),
    }
}

/// Answers one request from `peer` on `listener`. Never fails: every error is a problem
/// response.
pub async fn handle(
    state: &State,
    req: Request<Incoming>,
    peer: SocketAddr,
    listener: Listener,
) -> Response {
    let started = Instant::now();
    let client = state.trusted_proxies.client(peer, req.headers());
    let request_id = request_id::from_headers(req.headers());
    let origin = state.cors.allowed_origin(req.headers());
    let method = req.method().clone();
    let found = find(&method, req.uri().path(), listener, state.serving);
    let label = match &found {
        Lookup::Unknown => "unknown",
        Lookup::Methods { label, .. } => label,
        Lookup::Route(route, _) => route.label,
    };
    // Every line logged while answering carries the request id and route, so a cause in
    // the log can be matched to its access line.
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or_default(),
        route = label
    );
    let answer = async {
        let respond = respond(state, found, &method, origin.is_some(), &client, req);
        let mut response = match tokio::time::timeout(state.request_timeout, respond).await {
            Ok(response) => response,
            // The body may be half read: the connection cannot be reused.
            Err(_) => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request took too long",
            )
            .closing()
            .into_response(),
        };
        state.cors.apply(origin, response.headers_mut());
        response
            .headers_mut()
            .insert(request_id::HEADER, request_id.clone());
        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        state.metrics.request(label, status, elapsed);
        if response.extensions().get::<Shed>().is_some() {
            state.metrics.shed(label);
        }
        tracing::info!(
            target: "authd::access",
            method = %method,
            route = label,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            request_id = request_id.to_str().unwrap_or_default(),
            client = %client.addr,
            "request"
        );
        // hyper sends no body for HEAD but keeps the headers, Content-Length included.
        response
    };
    answer.instrument(span).await
}

/// Reads the body, then answers as the table says.
async fn respond(
    state: &State,
    found: Lookup,
    method: &Method,
    cors_origin: bool,
    client: &Client,
    req: Request<Incoming>,
) -> Response {
    let mut req = match body::read_body(req).await {
        Ok(req) => req,
        Err(problem) => return problem.into_response(),
    };
    req.extensions_mut().insert(*client);
    match found {
        Lookup::Unknown => Problem::not_found().into_response(),
        Lookup::Methods { allow, .. } if method == Method::OPTIONS => {
            let mut r = body::no_content();
            let allow = HeaderValue::from_str(&allow).expect("method names are header-safe");
            if cors_origin {
                state.cors.preflight(allow.clone(), r.headers_mut());
            }
            r.headers_mut().insert(ALLOW, allow);
            r
        }
        Lookup::Methods { allow, .. } => Problem::method_not_allowed(allow).into_response(),
        Lookup::Route(route, params) => {
            req.extensions_mut().insert(params);
            match route.gate {
                Gate::Open => {}
                Gate::PerClient => {
                    if let Err(limited) = state.client_limits.admit(client).await {
                        return Problem::from(limited).into_response();
                    }
                }
                Gate::AdminSecret => {
                    let presented = bearer::token(req.headers());
                    let secret = state.admin_secret.as_ref();
                    if !secret.is_some_and(|s| presented.is_some_and(|p| s.matches(p))) {
                        tracing::warn!(target: "authd::audit", client = %client.addr, "admin request refused: no or wrong admin secret");
                        return Problem::admin_secret_required().into_response();
                    }
                }
            }
            match (route.handler)(state, req).await {
                Ok(response) => response,
                Err(problem) => problem.into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH_OFF: Serving = Serving {
        admin_listener: false,
        admin_api: false,
    };
    const LISTENER_ONLY: Serving = Serving {
        admin_listener: true,
        admin_api: false,
    };

    #[test]
    fn every_route_is_found_by_its_method_and_path() {
        let public = |method: &Method, path: &str| find(method, path, Listener::Public, BOTH_OFF);
        let everything = Serving {
            admin_listener: true,
            admin_api: true,
        };
        for route in ROUTES {
            let listener = match route.scope {
                Scope::Admin | Scope::Operator => Listener::Admin,
                _ => Listener::Public,
            };
            let found = find(&route.method, route.path, listener, everything);
            assert!(
                matches!(found, Lookup::Route(r, _) if std::ptr::eq(r, route)),
                "{}",
                route.path
            );
        }
        assert!(matches!(public(&Method::GET, "/nope"), Lookup::Unknown));
        assert!(
            matches!(public(&Method::HEAD, "/healthz"), Lookup::Route(r, _) if r.label == "healthz")
        );
        match public(&Method::GET, "/login") {
            Lookup::Methods { label, allow } => {
                assert_eq!((label, allow.as_str()), ("login", "POST, OPTIONS"));
            }
            _ => panic!("GET /login is a known path with the wrong method"),
        }
        match public(&Method::POST, "/healthz") {
            Lookup::Methods { allow, .. } => assert_eq!(allow, "GET, HEAD, OPTIONS"),
            _ => panic!("POST /healthz is a known path with the wrong method"),
        }
    }

    #[test]
    fn operator_routes_move_to_the_admin_listener_when_there_is_one() {
        let get = Method::GET;
        let on = |path, listener, serving| {
            matches!(find(&get, path, listener, serving), Lookup::Route(..))
        };
        assert!(on("/metrics", Listener::Public, BOTH_OFF));
        assert!(!on("/metrics", Listener::Public, LISTENER_ONLY));
        assert!(on("/metrics", Listener::Admin, LISTENER_ONLY));
        assert!(!on(
            "/.well-known/jwks.json",
            Listener::Admin,
            LISTENER_ONLY
        ));
        assert!(on("/healthz", Listener::Admin, LISTENER_ONLY));
        assert!(on("/healthz", Listener::Public, LISTENER_ONLY));
    }

    #[test]
    fn the_admin_api_is_only_on_the_admin_listener_and_only_when_it_is_on() {
        let get = Method::GET;
        let on = |path, listener, serving| {
            matches!(find(&get, path, listener, serving), Lookup::Route(..))
        };
        let admin_api = Serving {
            admin_listener: true,
            admin_api: true,
        };
        for route in ROUTES.iter().filter(|r| r.scope == Scope::Admin) {
            assert_eq!(route.gate, Gate::AdminSecret, "{}", route.path);
            assert!(route.path.starts_with("/admin/"));
        }
        assert!(on("/admin/users", Listener::Admin, admin_api));
        assert!(!on("/admin/users", Listener::Public, admin_api));
        assert!(!on("/admin/users", Listener::Admin, LISTENER_ONLY));
        assert!(!on("/admin/users", Listener::Public, BOTH_OFF));
        // Unknown, not "wrong method", on the public listener.
        let post = find(
            &Method::POST,
            "/admin/users/x/disable",
            Listener::Public,
            admin_api,
        );
        assert!(matches!(post, Lookup::Unknown));
    }

    #[test]
    fn patterns_capture_their_segments() {
        assert_eq!(
            matches("/sessions/{id}", "/sessions/abc").map(|p| p.0),
            Some(vec!["abc".into()])
        );
        assert!(matches("/sessions/{id}", "/sessions/").is_none());
        assert!(matches("/sessions/{id}", "/sessions/a/b").is_none());
        assert!(matches("/sessions/{id}", "/sessions").is_none());
        assert_eq!(matches("/sessions", "/sessions").map(|p| p.0), Some(vec![]));
        assert_eq!(
            matches("/authz/{*path}", "/authz/api/v1/orders").map(|p| p.0),
            Some(vec!["api/v1/orders".into()])
        );
        // Envoy asks about `/` as `/authz/`.
        assert_eq!(
            matches("/authz/{*path}", "/authz/").map(|p| p.0),
            Some(vec!["".into()])
        );
        assert!(matches("/authz/{*path}", "/authz").is_none());
    }

    #[test]
    fn every_row_is_one_method_and_path_and_every_label_one_path() {
        let mut rows: Vec<_> = ROUTES.iter().map(|r| (r.path, r.method.as_str())).collect();
        rows.sort_unstable();
        rows.dedup();
        assert_eq!(rows.len(), ROUTES.len());
        for route in ROUTES {
            assert!(ROUTES
                .iter()
                .filter(|r| r.label == route.label)
                .all(|r| r.path == route.path));
        }
    }

    #[test]
    fn envoy_ext_authz_requests_reach_authz_with_any_method() {
        for method in [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            let found = find(&method, "/authz/api/orders", Listener::Public, BOTH_OFF);
            assert!(
                matches!(found, Lookup::Route(r, _) if r.label == "authz_forwarded"),
                "{method}"
            );
        }
    }
}
