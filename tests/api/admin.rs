//! The admin API and disabled accounts (SPEC §10).

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{
    base_config, free_port, path_of_link, spawn_app_with, AuthdProcess, Backend, Client, Scratch,
    Storage, TestApp, TestResponse, PASSWORD,
};

const SECRET: &str = "an-admin-secret-of-forty-characters-long";

/// An authd with the admin API on, and the directory holding its secret.
async fn app_with_admin(backend: Backend) -> (TestApp, Scratch) {
    let dir = Scratch::new();
    let secret = dir.file("admin-token", &format!("{SECRET}\n"));
    let app = spawn_app_with(
        backend,
        &[
            ("AUTH_ADMIN_LISTEN", "127.0.0.1:0"),
            ("AUTH_ADMIN_TOKEN_FILE", &secret),
        ],
    )
    .await;
    (app, dir)
}

fn admin(app: &TestApp) -> &Client {
    app.admin.as_ref().expect("the admin listener is on")
}

async fn act(app: &TestApp, method: Method, path: &str) -> TestResponse {
    admin(app).with_bearer(method, path, SECRET).await
}

async fn user(app: &TestApp, id: &str) -> Value {
    let res = act(app, Method::GET, &format!("/admin/users/{id}")).await;
    assert_eq!(res.status, StatusCode::OK);
    res.json()
}

#[tokio::test]
async fn the_admin_api_answers_only_on_its_listener_and_only_with_its_secret() {
    let (app, _dir) = app_with_admin(Backend::Memory).await;
    let id = app.verified_user("found@example.com").await;
    let path = "/admin/users?email=Found%40example.com";
    // Not on the public listener, with or without the secret.
    let public = app.with_bearer(Method::GET, path, SECRET).await;
    assert_eq!(public.status, StatusCode::NOT_FOUND);
    let post = app
        .with_bearer(Method::POST, &format!("/admin/users/{id}/disable"), SECRET)
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);

    let anonymous = admin(&app).get(path).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    for wrong in [&SECRET[..SECRET.len() - 1], "x", &format!("{SECRET}x")] {
        let res = admin(&app).with_bearer(Method::GET, path, wrong).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{wrong}");
    }
    let found = act(&app, Method::GET, path).await;
    assert_eq!(found.status, StatusCode::OK);
    let body = found.json();
    assert_eq!(body["user_id"], id.as_str());
    assert_eq!(body["email"], "found@example.com");
    assert_eq!(body["email_verified"], true);
    assert_eq!(body["disabled"], false);
    assert_eq!(body["sessions"], 0);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(user(&app, &id).await, body);
    let missing = act(&app, Method::GET, "/admin/users?email=nobody%40example.com").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unknown = uuid::Uuid::new_v4();
    for (method, path) in [
        (Method::GET, format!("/admin/users/{unknown}")),
        (Method::POST, format!("/admin/users/{unknown}/disable")),
        (Method::DELETE, "/admin/users/not-a-uuid".to_string()),
    ] {
        assert_eq!(act(&app, method, &path).await.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn without_a_secret_file_there_is_no_admin_api() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_ADMIN_LISTEN", "127.0.0.1:0")]).await;
    let res = admin(&app)
        .with_bearer(Method::GET, "/admin/users?email=a%40example.com", SECRET)
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(admin(&app).get("/metrics").await.status, StatusCode::OK);
}

#[test]
fn a_short_secret_or_a_secret_without_its_listener_stops_start_up_in_one_line() {
    let dir = Scratch::new();
    let short = dir.file("short", "only-31-bytes-long-secret-text!\n");
    let long = dir.file("long", &format!("{SECRET}\n"));
    let run = |env: &[(&str, &str)]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_authd"))
            .env_clear()
            .envs(base_config())
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8(output.stderr).unwrap()
    };
    let stderr = run(&[
        ("AUTH_ADMIN_LISTEN", "127.0.0.1:0"),
        ("AUTH_ADMIN_TOKEN_FILE", &short),
    ]);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("AUTH_ADMIN_TOKEN_FILE") && stderr.contains("32"),
        "{stderr}"
    );
    let stderr = run(&[("AUTH_ADMIN_TOKEN_FILE", &long)]);
    assert!(stderr.contains("AUTH_ADMIN_LISTEN"), "{stderr}");
    let stderr = run(&[
        ("AUTH_ADMIN_LISTEN", "127.0.0.1:0"),
        ("AUTH_ADMIN_TOKEN_FILE", "/nonexistent/admin-token"),
    ]);
    assert!(stderr.contains("/nonexistent/admin-token"), "{stderr}");
}

both!(a_disabled_account_is_refused_everywhere_until_enabled);
async fn a_disabled_account_is_refused_everywhere_until_enabled(backend: Backend) {
    let (app, _dir) = app_with_admin(backend).await;
    let (access, refresh) = app.session("dis@example.com").await;
    let id = user_id_of(&app, &access).await;
    assert_eq!(user(&app, &id).await["sessions"], 1);
    // A reset link issued before the disabling.
    app.post_json("/password/forgot", &json!({"email": "dis@example.com"}))
        .await;
    let sent = app.mailer.wait_for("dis@example.com", 2).await;
    let reset = path_of_link(&sent[1].text);
    let reset_token = reset.rsplit('=').next().unwrap().to_string();
    let disable = act(&app, Method::POST, &format!("/admin/users/{id}/disable")).await;
    assert_eq!(disable.status, StatusCode::NO_CONTENT);

    for path in ["/authz", "/userinfo", "/sessions"] {
        let res = app.with_bearer(Method::GET, path, &access).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(res.problem_code(), "account_disabled", "{path}");
    }
    let res = app.refresh(&refresh).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.problem_code(), "account_disabled");
    let res = app.login("dis@example.com", PASSWORD).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(res.problem_code(), "account_disabled");
    // Only a caller with the password learns that the account exists and is disabled.
    let res = app.login("dis@example.com", "wrong password").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let view = user(&app, &id).await;
    assert_eq!(
        (view["disabled"].clone(), view["sessions"].clone()),
        (true.into(), 0.into())
    );

    let enable = act(&app, Method::POST, &format!("/admin/users/{id}/enable")).await;
    assert_eq!(enable.status, StatusCode::NO_CONTENT);
    assert_eq!(user(&app, &id).await["disabled"], false);
    assert_eq!(app.login("dis@example.com", PASSWORD).await.status, 200);
    // What ended stays ended, and links issued before are dead.
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
    let res = app
        .post_json(
            "/password/reset",
            &json!({"token": reset_token, "password": "a new passphrase"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    // An ended session's token stays refused; once what the mark said (remembered for a
    // second) is read again, as a plain 401.
    app.clock.advance(std::time::Duration::from_secs(1));
    let res = app.with_bearer(Method::GET, "/authz", &access).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

both!(an_operator_verifies_ends_sessions_and_deletes);
async fn an_operator_verifies_ends_sessions_and_deletes(backend: Backend) {
    let (app, _dir) = app_with_admin(backend).await;
    let registered = app.register("op@example.com", PASSWORD).await.json();
    let id = registered["user_id"].as_str().unwrap().to_string();
    assert_eq!(app.login("op@example.com", PASSWORD).await.status, 403);
    let verify = act(&app, Method::POST, &format!("/admin/users/{id}/verify")).await;
    assert_eq!(verify.status, StatusCode::NO_CONTENT);
    let login = app.login("op@example.com", PASSWORD).await.json();
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();

    let revoke = act(
        &app,
        Method::POST,
        &format!("/admin/users/{id}/sessions/revoke"),
    )
    .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let authz = app.with_bearer(Method::GET, "/authz", access).await;
    assert_eq!(authz.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(refresh).await.status, StatusCode::UNAUTHORIZED);

    let login = app.login("op@example.com", PASSWORD).await.json();
    let access = login["access_token"].as_str().unwrap();
    let delete = act(&app, Method::DELETE, &format!("/admin/users/{id}")).await;
    assert_eq!(delete.status, StatusCode::NO_CONTENT);
    let authz = app.with_bearer(Method::GET, "/authz", access).await;
    assert_eq!(authz.status, StatusCode::UNAUTHORIZED);
    let gone = act(&app, Method::GET, &format!("/admin/users/{id}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.register("op@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let metrics = admin(&app).get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    for action in ["verify", "revoke_sessions", "delete"] {
        let line = format!("authd_admin_actions_total{{action=\"{action}\"}} 1");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    assert!(text.contains("authd_account_events_total{event=\"deleted\"} 1"));
}

async fn user_id_of(app: &TestApp, access: &str) -> String {
    let info = app.with_bearer(Method::GET, "/userinfo", access).await;
    info.json()["sub"].as_str().unwrap().to_string()
}

/// Every admin action is on the `authd::audit` log with its user id — never the secret.
#[tokio::test]
async fn every_admin_action_is_audited_without_the_secret() {
    let dir = Scratch::new();
    let secret = dir.file("admin-token", SECRET);
    let admin_addr = format!("127.0.0.1:{}", free_port());
    let process = AuthdProcess::start(
        &Storage::memory(),
        &[
            ("AUTH_ADMIN_LISTEN", &admin_addr),
            ("AUTH_ADMIN_TOKEN_FILE", &secret),
            ("AUTH_LOG", "info"),
        ],
    )
    .await;
    let app = process.client();
    let registered = app.register("audited@example.com", PASSWORD).await.json();
    let id = registered["user_id"].as_str().unwrap().to_string();
    let operator = Client {
        addr: admin_addr.parse().unwrap(),
        source: None,
    };
    for (method, path) in [
        (Method::GET, format!("/admin/users/{id}")),
        (Method::POST, format!("/admin/users/{id}/disable")),
        (Method::POST, format!("/admin/users/{id}/enable")),
        (Method::POST, format!("/admin/users/{id}/sessions/revoke")),
        (Method::POST, format!("/admin/users/{id}/verify")),
        (Method::DELETE, format!("/admin/users/{id}")),
    ] {
        let res = operator.with_bearer(method, &path, SECRET).await;
        assert!(res.status.is_success(), "{path}: {}", res.status);
    }
    let actions = [
        "lookup",
        "disable",
        "enable",
        "revoke_sessions",
        "verify",
        "delete",
    ];
    let audited = |output: &str, action: &str| {
        let field = format!("action=\"{action}\"");
        output
            .lines()
            .any(|l| l.contains("authd::audit") && l.contains(&field) && l.contains(&id))
    };
    // The child's log reaches the test through a pipe: give the last lines a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut output = process.output();
    while !actions.iter().all(|a| audited(&output, a)) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        output = process.output();
    }
    for action in actions {
        assert!(
            audited(&output, action),
            "no audit line for {action}:\n{output}"
        );
    }
    assert!(!output.contains(SECRET), "the secret is in the log");
}
