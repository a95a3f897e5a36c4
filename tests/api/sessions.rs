//! Sessions and what gateways ask about bearer tokens (SPEC §2 `sid`, §9): `/authz`,
//! `/userinfo`, `/sessions`, and revocation that takes effect at once — on this replica
//! before the answer, on every other within a second, and after a crash.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::PgProxy;
use crate::support::{
    path_of_link, spawn_app_on, spawn_app_with, spawn_replica, testdata, Backend, Scratch, Storage,
    TestApp, TestResponse, PASSWORD,
};

const ADMIN_SECRET: &str = "the-admin-secret-of-these-session-tests";

/// Writes the admin secret into `dir`; the variables that turn the admin API on with it.
fn admin_api(dir: &Scratch) -> [(&'static str, String); 2] {
    [
        ("AUTH_ADMIN_LISTEN", "127.0.0.1:0".to_string()),
        (
            "AUTH_ADMIN_TOKEN_FILE",
            dir.file("admin-token", ADMIN_SECRET),
        ),
    ]
}

fn as_overrides<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// One login: its tokens.
#[derive(Clone)]
struct Pair {
    access: String,
    refresh: String,
}

fn pair_of(res: &TestResponse) -> Pair {
    assert_eq!(res.status, StatusCode::OK, "{:?}", res.body);
    let body = res.json();
    Pair {
        access: body["access_token"].as_str().unwrap().into(),
        refresh: body["refresh_token"].as_str().unwrap().into(),
    }
}

async fn login_as(app: &TestApp, email: &str, agent: &str) -> Pair {
    let body = json!({"email": email, "password": PASSWORD})
        .to_string()
        .into_bytes();
    let headers = [("content-type", "application/json"), ("user-agent", agent)];
    pair_of(
        &app.request(Method::POST, "/login", &headers, Some(body))
            .await,
    )
}

fn claims(access: &str) -> Value {
    let payload = access.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sid(access: &str) -> String {
    claims(access)["sid"].as_str().expect("a sid claim").into()
}

async fn authz(app: &TestApp, access: &str) -> StatusCode {
    app.with_bearer(Method::GET, "/authz", access).await.status
}

/// Every bearer route refuses `access` with `status`: 401 with a Bearer challenge, or
/// 403 `account_disabled`.
async fn assert_refused_everywhere(app: &TestApp, access: &str, status: StatusCode) {
    for (method, path) in [
        (Method::GET, "/authz"),
        (Method::HEAD, "/authz"),
        (Method::GET, "/userinfo"),
        (Method::GET, "/sessions"),
        (Method::DELETE, "/sessions"),
    ] {
        let res = app.with_bearer(method.clone(), path, access).await;
        assert_eq!(res.status, status, "{method} {path}");
        if status == StatusCode::UNAUTHORIZED {
            let challenge = res.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer"),
                "{method} {path}: {challenge}"
            );
        } else if method != Method::HEAD {
            assert_eq!(res.problem_code(), "account_disabled");
        }
    }
}

both!(every_access_token_names_its_session_and_keeps_it_across_refreshes);
async fn every_access_token_names_its_session_and_keeps_it_across_refreshes(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let user = app.verified_user("sid@example.com").await;
    let first = login_as(&app, "sid@example.com", "test").await;
    let session = sid(&first.access);
    assert!(uuid::Uuid::parse_str(&session).is_ok(), "{session}");
    assert_ne!(session, user);
    let next = pair_of(&app.refresh(&first.refresh).await);
    assert_eq!(sid(&next.access), session, "a refresh stays in its session");
    let other = login_as(&app, "sid@example.com", "test").await;
    assert_ne!(sid(&other.access), session, "a login starts a session");
    // The one /authz names is the token's.
    let res = app.with_bearer(Method::GET, "/authz", &next.access).await;
    assert_eq!(res.header("x-auth-session-id"), Some(session.as_str()));
}

both!(authz_admits_valid_tokens_of_live_sessions_and_nothing_else);
async fn authz_admits_valid_tokens_of_live_sessions_and_nothing_else(backend: Backend) {
    let app = spawn_app_with(backend, &[("AUTH_ACCESS_TTL", "10m")]).await;
    let user = app.verified_user("gate@example.com").await;
    let pair = login_as(&app, "gate@example.com", "test").await;
    for method in [Method::GET, Method::HEAD] {
        let res = app
            .with_bearer(method.clone(), "/authz", &pair.access)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{method}");
        assert!(res.body.is_empty());
        assert_eq!(res.header("x-auth-user-id"), Some(user.as_str()));
        assert_eq!(
            res.header("x-auth-session-id"),
            Some(sid(&pair.access).as_str())
        );
        assert_eq!(res.header("cache-control"), Some("no-store"));
    }

    let refused = |res: TestResponse, what: &str| {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            res.header("www-authenticate")
                .unwrap_or_default()
                .starts_with("Bearer"),
            "{what}"
        );
        assert!(res.header("x-auth-user-id").is_none(), "{what}");
    };
    refused(app.get("/authz").await, "no token");
    for header in ["Basic abc", "Bearer", "Bearer not.a.jwt", "bearer"] {
        let res = app
            .request(Method::GET, "/authz", &[("authorization", header)], None)
            .await;
        refused(res, header);
    }
    // A flipped signature byte.
    let mut parts: Vec<String> = pair.access.split('.').map(String::from).collect();
    let mut signature = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    signature[10] ^= 1;
    parts[2] = URL_SAFE_NO_PAD.encode(signature);
    refused(
        app.with_bearer(Method::GET, "/authz", &parts.join("."))
            .await,
        "badly signed",
    );
    // Signed by authd's own key, but for another issuer.
    let key =
        authd::jwt::SigningKey::from_pem_file(std::path::Path::new(&testdata("signing-key.pem")))
            .unwrap();
    let foreign = authd::jwt::Signer::new(key.into(), "https://elsewhere".into(), None, 600);
    let user_id = authd::domain::UserId::from_uuid(uuid::Uuid::parse_str(&user).unwrap());
    let session = authd::domain::SessionId::parse(&sid(&pair.access)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = foreign.issue(user_id, session, now).unwrap().token;
    refused(
        app.with_bearer(Method::GET, "/authz", &token).await,
        "foreign issuer",
    );
    // Still fine; then expired (the cache of verified tokens does not outlive `exp`).
    assert_eq!(authz(&app, &pair.access).await, StatusCode::OK);
    app.clock.advance(Duration::from_secs(601));
    refused(
        app.with_bearer(Method::GET, "/authz", &pair.access).await,
        "expired",
    );
}

both!(userinfo_says_whom_the_token_speaks_for);
async fn userinfo_says_whom_the_token_speaks_for(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    let user = app.verified_user("Info@Example.com").await;
    let pair = login_as(&app, "info@example.com", "test").await;
    let res = app
        .with_bearer(Method::GET, "/userinfo", &pair.access)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(
        res.json(),
        json!({"sub": user, "email": "info@example.com", "email_verified": true})
    );
    let res = app.get("/userinfo").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

both!(sessions_are_listed_with_their_agent_and_the_current_one_marked);
async fn sessions_are_listed_with_their_agent_and_the_current_one_marked(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.verified_user("lists@example.com").await;
    let laptop = login_as(&app, "lists@example.com", "Firefox/140 on the laptop").await;
    let long_agent = format!("{}\u{202e}", "Phone ".repeat(60)); // 361 bytes
    let phone = login_as(&app, "lists@example.com", &long_agent).await;
    app.verified_user("stranger@example.com").await;
    login_as(&app, "stranger@example.com", "not listed").await;
    let res = app
        .with_bearer(Method::GET, "/sessions", &phone.access)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    let sessions = res.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let find = |access: &str| {
        sessions
            .iter()
            .find(|s| s["id"] == sid(access).as_str())
            .unwrap_or_else(|| panic!("{} is not listed", sid(access)))
            .clone()
    };
    let (on_laptop, on_phone) = (find(&laptop.access), find(&phone.access));
    assert_eq!(on_laptop["current"], false);
    assert_eq!(on_phone["current"], true);
    assert_eq!(on_laptop["user_agent"], "Firefox/140 on the laptop");
    // Bounded: cut at 256 bytes; the right-to-left override would have been shown as `?`.
    assert_eq!(
        on_phone["user_agent"],
        "Phone ".repeat(60)[..256].to_string().as_str()
    );
    for field in ["created_at", "last_used_at"] {
        let at = on_laptop[field].as_str().unwrap();
        assert!(at.ends_with('Z'), "{field} {at} is not UTC");
        humantime::parse_rfc3339(at).unwrap_or_else(|e| panic!("{field} {at}: {e}"));
    }
    assert_eq!(on_laptop["created_at"], on_laptop["last_used_at"]);

    // A refresh is a use: last_used_at moves, created_at does not.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let laptop = pair_of(&app.refresh(&laptop.refresh).await);
    let res = app
        .with_bearer(Method::GET, "/sessions", &laptop.access)
        .await;
    let sessions = res.json()["sessions"].as_array().unwrap().clone();
    let now_laptop = sessions
        .iter()
        .find(|s| s["id"] == sid(&laptop.access).as_str())
        .unwrap();
    assert_eq!(now_laptop["current"], true);
    assert_eq!(now_laptop["created_at"], on_laptop["created_at"]);
    assert!(
        now_laptop["last_used_at"].as_str() > on_laptop["last_used_at"].as_str(),
        "{now_laptop} vs {on_laptop}"
    );
}

both!(ending_one_session_refuses_its_tokens_and_leaves_the_others);
async fn ending_one_session_refuses_its_tokens_and_leaves_the_others(backend: Backend) {
    let app = spawn_app_with(backend, &[]).await;
    app.verified_user("ender@example.com").await;
    let mine = login_as(&app, "ender@example.com", "here").await;
    let stolen = login_as(&app, "ender@example.com", "there").await;
    app.verified_user("neighbour@example.com").await;
    let neighbour = login_as(&app, "neighbour@example.com", "next door").await;
    assert_eq!(authz(&app, &stolen.access).await, StatusCode::OK);

    let end = |id: String, access: String| {
        let app = &app;
        async move {
            app.with_bearer(Method::DELETE, &format!("/sessions/{id}"), &access)
                .await
        }
    };
    // Someone else's session, an unknown one and a non-id are all "not yours".
    for id in [
        sid(&neighbour.access),
        uuid::Uuid::new_v4().to_string(),
        "not-a-session".into(),
    ] {
        let res = end(id.clone(), mine.access.clone()).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(res.problem_code(), "not_found");
    }
    assert_eq!(authz(&app, &neighbour.access).await, StatusCode::OK);

    let res = end(sid(&stolen.access), mine.access.clone()).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_refused_everywhere(&app, &stolen.access, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        app.refresh(&stolen.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Ended already: no longer one of the live ones.
    let res = end(sid(&stolen.access), mine.access.clone()).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(authz(&app, &mine.access).await, StatusCode::OK);
    let listed = app
        .with_bearer(Method::GET, "/sessions", &mine.access)
        .await
        .json();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1);
    // A session may end itself.
    let res = end(sid(&mine.access), mine.access.clone()).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_refused_everywhere(&app, &mine.access, StatusCode::UNAUTHORIZED).await;
    assert_eq!(authz(&app, &neighbour.access).await, StatusCode::OK);
}

/// Every way a session ends (SPEC §9).
#[derive(Debug, Clone, Copy)]
enum Ending {
    Logout,
    ReuseDetected,
    PasswordChange,
    PasswordReset,
    EndOne,
    LogOutEverywhere,
    EmailChange,
    AccountDeleted,
    AdminRevoke,
    AdminDisable,
    AdminDelete,
}

const ENDINGS: [Ending; 11] = [
    Ending::Logout,
    Ending::ReuseDetected,
    Ending::PasswordChange,
    Ending::PasswordReset,
    Ending::EndOne,
    Ending::LogOutEverywhere,
    Ending::EmailChange,
    Ending::AccountDeleted,
    Ending::AdminRevoke,
    Ending::AdminDisable,
    Ending::AdminDelete,
];

impl Ending {
    /// How bearer routes refuse the ended session's tokens.
    fn refusal(self) -> StatusCode {
        match self {
            Ending::AdminDisable => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Ends `victim`'s session on `app` as `how` says; `other` is another session of the same
/// user, from which the user acts where a bearer is needed. Returns the access tokens that
/// must now be refused.
async fn end_session(app: &TestApp, how: Ending, email: &str, victim: &Pair) -> Vec<String> {
    let status = match how {
        Ending::Logout => app.logout(&victim.refresh).await.status,
        Ending::ReuseDetected => {
            let next = pair_of(&app.refresh(&victim.refresh).await);
            let replay = app.refresh(&victim.refresh).await;
            assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
            return vec![victim.access.clone(), next.access];
        }
        Ending::PasswordChange => {
            let other = login_as(app, email, "changer").await;
            let body = json!({"current_password": PASSWORD, "new_password": PASSWORD})
                .to_string()
                .into_bytes();
            let auth = format!("Bearer {}", other.access);
            let headers = [
                ("content-type", "application/json"),
                ("authorization", auth.as_str()),
            ];
            let res = app
                .request(Method::POST, "/password/change", &headers, Some(body))
                .await;
            assert_eq!(res.status, StatusCode::NO_CONTENT);
            return vec![victim.access.clone(), other.access];
        }
        Ending::PasswordReset => {
            let before = app.mailer.sent_to(email).len();
            let res = app
                .post_json("/password/forgot", &json!({"email": email}))
                .await;
            assert_eq!(res.status, StatusCode::ACCEPTED);
            let emails = app.mailer.wait_for(email, before + 1).await;
            let link = path_of_link(&emails.last().unwrap().text);
            let token = link.rsplit('=').next().unwrap();
            app.post_json(
                "/password/reset",
                &json!({"token": token, "password": PASSWORD}),
            )
            .await
            .status
        }
        Ending::EndOne => {
            let path = format!("/sessions/{}", sid(&victim.access));
            app.with_bearer(Method::DELETE, &path, &victim.access)
                .await
                .status
        }
        Ending::LogOutEverywhere => {
            let other = login_as(app, email, "everywhere").await;
            let res = app
                .with_bearer(Method::DELETE, "/sessions", &other.access)
                .await;
            assert_eq!(res.status, StatusCode::NO_CONTENT);
            return vec![victim.access.clone(), other.access];
        }
        Ending::EmailChange => {
            let moved = format!("moved-{email}");
            let body = json!({"new_email": moved, "password": PASSWORD});
            let res = app
                .post_json_with_bearer("/email/change", &victim.access, &body)
                .await;
            assert_eq!(res.status, StatusCode::ACCEPTED);
            let emails = app.mailer.wait_for(&moved, 1).await;
            app.get(&path_of_link(&emails[0].text)).await.status
        }
        Ending::AccountDeleted => {
            let body = json!({"password": PASSWORD});
            app.post_json_with_bearer("/account/delete", &victim.access, &body)
                .await
                .status
        }
        Ending::AdminRevoke | Ending::AdminDisable | Ending::AdminDelete => {
            let info = app.with_bearer(Method::GET, "/userinfo", &victim.access);
            let user = info.await.json()["sub"].as_str().unwrap().to_string();
            let (method, path) = match how {
                Ending::AdminRevoke => {
                    (Method::POST, format!("/admin/users/{user}/sessions/revoke"))
                }
                Ending::AdminDisable => (Method::POST, format!("/admin/users/{user}/disable")),
                _ => (Method::DELETE, format!("/admin/users/{user}")),
            };
            let admin = app.admin.as_ref().expect("the admin API is on");
            admin.with_bearer(method, &path, ADMIN_SECRET).await.status
        }
    };
    assert!(status.is_success(), "{how:?}: {status}");
    vec![victim.access.clone()]
}

both!(every_way_a_session_ends_is_refused_at_once);
async fn every_way_a_session_ends_is_refused_at_once(backend: Backend) {
    let dir = Scratch::new();
    let app = spawn_app_with(backend, &as_overrides(&admin_api(&dir))).await;
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.get("/.well-known/jwks.json").await.json()).unwrap();
    for (n, how) in ENDINGS.into_iter().enumerate() {
        let email = format!("ending-{n}@example.com");
        app.verified_user(&email).await;
        let victim = login_as(&app, &email, "victim").await;
        assert_eq!(authz(&app, &victim.access).await, StatusCode::OK);
        for access in end_session(&app, how, &email, &victim).await {
            // The very next request, on the replica that ended it.
            assert_eq!(authz(&app, &access).await, how.refusal(), "{how:?}");
            assert_refused_everywhere(&app, &access, how.refusal()).await;
            // A signature-only verifier keeps accepting it until `exp` (SPEC §9).
            let header = jsonwebtoken::decode_header(&access).unwrap();
            let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&header.kid.unwrap()).unwrap())
                .unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.validate_aud = false;
            assert!(jsonwebtoken::decode::<Value>(&access, &key, &validation).is_ok());
        }
    }
}

/// Waits until `replica` refuses `access` on `/authz` with `status`; how long that took.
async fn refused_within(
    replica: &TestApp,
    access: &str,
    status: StatusCode,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if authz(replica, access).await == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "the other replica still accepts an ended session after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SPEC §9: every replica refuses an ended session's tokens within 1 s, however it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_refuses_an_ended_session_within_a_second() {
    let storage = Storage::real().await;
    // Replicas behind one name: one issuer.
    let dir = Scratch::new();
    let admin = admin_api(&dir);
    let mut env = as_overrides(&admin);
    env.push(("AUTH_ISSUER", "https://auth.example"));
    let a = spawn_app_on(storage.clone(), &env).await;
    let b = spawn_replica(&a, &env).await;
    for (n, how) in ENDINGS.into_iter().enumerate() {
        let email = format!("replicas-{n}@example.com");
        a.verified_user(&email).await;
        let victim = login_as(&a, &email, "victim").await;
        assert_eq!(authz(&b, &victim.access).await, StatusCode::OK);
        let refused = end_session(&a, how, &email, &victim).await;
        for access in &refused {
            let took = refused_within(&b, access, how.refusal(), Duration::from_secs(1)).await;
            eprintln!("{how:?}: refused by the other replica after {took:?}");
        }
    }
}

/// An end is committed before it is answered: a replica started after a crash refuses
/// the session too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_stays_ended_across_a_crash() {
    let storage = Storage::real().await;
    let issuer = [("AUTH_ISSUER", "https://auth.example")];
    let first = spawn_app_on(storage.clone(), &issuer).await;
    first.verified_user("crash@example.com").await;
    let victim = login_as(&first, "crash@example.com", "victim").await;
    let res = first
        .with_bearer(Method::DELETE, "/sessions", &victim.access)
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    drop(first); // stops at once, nothing flushed after the answer
    let second = spawn_app_on(storage.clone(), &issuer).await;
    assert_eq!(
        authz(&second, &victim.access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        second.refresh(&victim.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Not because it refuses everything: a new session of the same user is fine.
    let alive = login_as(&second, "crash@example.com", "alive").await;
    assert_eq!(authz(&second, &alive.access).await, StatusCode::OK);
}

/// SPEC §9: `/authz` answers without a database round trip, counted on the wire.
#[tokio::test]
async fn authz_makes_no_database_round_trip() {
    let storage = Storage::real().await;
    let proxy = PgProxy::start(&crate::support::services().postgres).await;
    let through_proxy = proxy.in_front_of(&storage.database.as_ref().unwrap().url);
    let app = spawn_app_on(storage.clone(), &[("DATABASE_URL", &through_proxy)]).await;
    let (access, _) = app.session("counted-authz@example.com").await;
    assert_eq!(authz(&app, &access).await, StatusCode::OK);
    let before = proxy.round_trips();
    let started = Instant::now();
    const CALLS: u64 = 100;
    for _ in 0..CALLS {
        assert_eq!(authz(&app, &access).await, StatusCode::OK);
    }
    let trips = proxy.round_trips() - before;
    // Only the background: the outbox worker (two statements a second) and the
    // revocation poller (four a second).
    let background = (started.elapsed().as_secs_f64() * 6.0).ceil() as u64 + 4;
    assert!(background < CALLS / 2, "the calls were too slow to count");
    assert!(
        trips <= background,
        "{CALLS} calls to /authz took {trips} round trips"
    );
}
