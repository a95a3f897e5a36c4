//! Account lifecycle (SPEC §10): changing the email address and deleting the account.

use hyper::{Method, StatusCode};
use serde_json::json;

use crate::persistence::dump_database;
use crate::support::{
    path_of_link, spawn_app, spawn_app_on, spawn_app_with, Backend, Storage, TestApp, PASSWORD,
};

async fn change_email(app: &TestApp, access: &str, new: &str, password: &str) -> StatusCode {
    let body = json!({"new_email": new, "password": password});
    app.post_json_with_bearer("/email/change", access, &body)
        .await
        .status
}

/// The path of the `n`-th (1-based) email-change link sent to `to`.
async fn confirmation_path(app: &TestApp, to: &str, n: usize) -> String {
    let emails = app.mailer.wait_for(to, n).await;
    let path = path_of_link(&emails[n - 1].text);
    assert!(path.starts_with("/email/confirm?token="), "{path}");
    path
}

async fn authz(app: &TestApp, access: &str) -> StatusCode {
    app.with_bearer(Method::GET, "/authz", access).await.status
}

both!(an_email_change_is_confirmed_from_the_new_address_and_ends_every_session);
/// The link goes to the new address, a notice without a link to the current one; nothing
/// changes until the link is used, and then every session ends.
async fn an_email_change_is_confirmed_from_the_new_address_and_ends_every_session(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.session("ann@example.com").await;
    let status = change_email(&app, &access, "Ann.New@Example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let path = confirmation_path(&app, "ann.new@example.com", 1).await;
    let notices = app.mailer.wait_for("ann@example.com", 2).await;
    let notice = &notices[1];
    assert!(!notice.text.contains("token="), "{}", notice.text);
    assert!(notice.text.contains("change"), "{}", notice.text);

    // Nothing has changed yet.
    assert_eq!(app.login("ann@example.com", PASSWORD).await.status, 200);
    assert_eq!(authz(&app, &access).await, StatusCode::OK);
    // A link checker's HEAD does not spend the token.
    let head = app.request(Method::HEAD, &path, &[], None).await;
    assert_eq!(head.status, StatusCode::OK);

    let confirmed = app.get(&path).await;
    assert_eq!(confirmed.status, StatusCode::OK);
    assert_eq!(
        confirmed.json(),
        json!({"email": "ann.new@example.com", "email_verified": true})
    );
    assert_eq!(authz(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("ann@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let login = app.login("ann.new@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK);
    let info = app
        .with_bearer(
            Method::GET,
            "/userinfo",
            login.json()["access_token"].as_str().unwrap(),
        )
        .await
        .json();
    assert_eq!(info["email"], "ann.new@example.com");
    // The old address is told of the change once it is made.
    let told = app.mailer.wait_for("ann@example.com", 3).await;
    assert!(
        told[2].text.contains("was changed to a***@example.com"),
        "{}",
        told[2].text
    );
    // Single use; and the old address is free for anyone.
    assert_eq!(app.get(&path).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.register("ann@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
}

both!(an_email_change_needs_the_password_a_free_address_and_a_fresh_link);
async fn an_email_change_needs_the_password_a_free_address_and_a_fresh_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, _) = app.session("bea@example.com").await;
    app.verified_user("taken@example.com").await;
    let wrong = app
        .post_json_with_bearer(
            "/email/change",
            &access,
            &json!({"new_email": "bea2@example.com", "password": "wrong password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.problem_code(), "invalid_credentials");
    let taken = app
        .post_json_with_bearer(
            "/email/change",
            &access,
            &json!({"new_email": "TAKEN@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.problem_code(), "email_taken");
    assert_eq!(
        change_email(&app, &access, "bea@example.com", PASSWORD).await,
        StatusCode::CONFLICT,
        "its own address"
    );
    assert_eq!(
        change_email(&app, &access, "not an address", PASSWORD).await,
        StatusCode::BAD_REQUEST
    );
    let anonymous = app
        .post_json(
            "/email/change",
            &json!({"new_email": "x@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.header("www-authenticate").is_some());

    // Two changes asked: the first confirmed makes the other's link stale.
    assert_eq!(
        change_email(&app, &access, "bea.x@example.com", PASSWORD).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        change_email(&app, &access, "bea.y@example.com", PASSWORD).await,
        StatusCode::ACCEPTED
    );
    let to_x = confirmation_path(&app, "bea.x@example.com", 1).await;
    let to_y = confirmation_path(&app, "bea.y@example.com", 1).await;
    assert_eq!(app.get(&to_x).await.status, StatusCode::OK);
    assert_eq!(app.get(&to_y).await.status, StatusCode::BAD_REQUEST);

    // Taken between the request and the confirmation: 409.
    let login = app.login("bea.x@example.com", PASSWORD).await.json();
    let access = login["access_token"].as_str().unwrap();
    assert_eq!(
        change_email(&app, access, "late@example.com", PASSWORD).await,
        StatusCode::ACCEPTED
    );
    let late = confirmation_path(&app, "late@example.com", 1).await;
    assert_eq!(
        app.register("late@example.com", PASSWORD).await.status,
        StatusCode::CREATED
    );
    let res = app.get(&late).await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.problem_code(), "email_taken");
    assert_eq!(app.login("bea.x@example.com", PASSWORD).await.status, 200);
}

both!(a_changed_password_or_address_kills_every_pending_link);
/// The owner who sees the notice and changes the password stops the change; a confirmed
/// change kills the links sent to the old address.
async fn a_changed_password_or_address_kills_every_pending_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, _) = app.session("cat@example.com").await;
    assert_eq!(
        change_email(&app, &access, "thief@example.com", PASSWORD).await,
        StatusCode::ACCEPTED
    );
    let stolen = confirmation_path(&app, "thief@example.com", 1).await;
    let body = json!({"current_password": PASSWORD, "new_password": "another passphrase"});
    let changed = app
        .post_json_with_bearer("/password/change", &access, &body)
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&stolen).await.status, StatusCode::BAD_REQUEST);

    // A reset link sent to the old address dies with the change of address.
    let login = app
        .login("cat@example.com", "another passphrase")
        .await
        .json();
    let access = login["access_token"].as_str().unwrap();
    let before = app.mailer.sent_to("cat@example.com").len();
    app.post_json("/password/forgot", &json!({"email": "cat@example.com"}))
        .await;
    let sent = app.mailer.wait_for("cat@example.com", before + 1).await;
    let reset = path_of_link(&sent[before].text);
    let reset_token = reset.rsplit('=').next().unwrap().to_string();
    assert_eq!(
        change_email(&app, access, "cat.new@example.com", "another passphrase").await,
        StatusCode::ACCEPTED
    );
    let confirm = confirmation_path(&app, "cat.new@example.com", 1).await;
    assert_eq!(app.get(&confirm).await.status, StatusCode::OK);
    let res = app
        .post_json(
            "/password/reset",
            &json!({"token": reset_token, "password": "taken over now"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    let login = app.login("cat.new@example.com", "another passphrase").await;
    assert_eq!(login.status, StatusCode::OK);
}

/// Each change sends two emails: an account asks for at most `AUTH_RESEND_MAX` per window.
#[tokio::test]
async fn email_changes_are_limited_per_account() {
    let app = spawn_app_with(Backend::Memory, &[("AUTH_RESEND_MAX", "1")]).await;
    let (access, _) = app.session("dan@example.com").await;
    let first = change_email(&app, &access, "dan1@example.com", PASSWORD).await;
    assert_eq!(first, StatusCode::ACCEPTED);
    let body = json!({"new_email": "dan2@example.com", "password": PASSWORD});
    let second = app
        .post_json_with_bearer("/email/change", &access, &body)
        .await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(second.header("retry-after").is_some());
    app.mail_barrier("dan-barrier@example.com").await;
    assert!(app.mailer.sent_to("dan2@example.com").is_empty());
}

both!(of_two_confirmations_to_one_address_exactly_one_wins);
async fn of_two_confirmations_to_one_address_exactly_one_wins(backend: Backend) {
    let app = spawn_app(backend).await;
    let (first, _) = app.session("one@example.com").await;
    let (second, _) = app.session("two@example.com").await;
    for access in [&first, &second] {
        assert_eq!(
            change_email(&app, access, "prize@example.com", PASSWORD).await,
            StatusCode::ACCEPTED
        );
    }
    app.mailer.wait_for("prize@example.com", 2).await;
    let links = [
        confirmation_path(&app, "prize@example.com", 1).await,
        confirmation_path(&app, "prize@example.com", 2).await,
    ];
    let (a, b) = tokio::join!(app.get(&links[0]), app.get(&links[1]));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    assert_eq!(app.login("prize@example.com", PASSWORD).await.status, 200);
}

both!(a_deleted_account_is_gone_and_its_address_can_register_again);
async fn a_deleted_account_is_gone_and_its_address_can_register_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let (access, refresh) = app.session("gone@example.com").await;
    let first_id = app
        .with_bearer(Method::GET, "/userinfo", &access)
        .await
        .json()["sub"]
        .clone();
    // A reset link issued before the deletion.
    app.post_json("/password/forgot", &json!({"email": "gone@example.com"}))
        .await;
    let reset = app.mailer.wait_for("gone@example.com", 2).await;
    let reset_token = path_of_link(&reset[1].text)
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();

    let delete = |password: &'static str| {
        let access = access.clone();
        let app = &app;
        async move {
            app.post_json_with_bearer("/account/delete", &access, &json!({"password": password}))
                .await
        }
    };
    let wrong = delete("wrong password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.problem_code(), "invalid_credentials");
    assert_eq!(authz(&app, &access).await, StatusCode::OK, "still there");
    assert_eq!(delete(PASSWORD).await.status, StatusCode::NO_CONTENT);

    assert_eq!(authz(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&refresh).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("gone@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let reset = app
        .post_json(
            "/password/reset",
            &json!({"token": reset_token, "password": "a new password"}),
        )
        .await;
    assert_eq!(reset.status, StatusCode::BAD_REQUEST, "its links are dead");
    assert_eq!(
        delete(PASSWORD).await.status,
        StatusCode::UNAUTHORIZED,
        "its tokens are dead"
    );

    let again = app.register("gone@example.com", PASSWORD).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_ne!(again.json()["user_id"], first_id);
}

/// SPEC §10: after a deletion neither PostgreSQL nor Redis holds the address or the user
/// id — not in a row, a key, a value, or a pending email.
#[tokio::test]
async fn a_deleted_account_leaves_neither_its_address_nor_its_id_in_storage() {
    let storage = Storage::real().await;
    let app = spawn_app_on(storage.clone(), &[]).await;
    // A reset asked for the address before it had an account.
    app.post_json("/password/forgot", &json!({"email": "Trace@Example.com"}))
        .await;
    let user_id = app.verified_user("trace@example.com").await;
    let login = app.login("trace@example.com", PASSWORD).await.json();
    let access = login["access_token"].as_str().unwrap().to_string();
    app.refresh(login["refresh_token"].as_str().unwrap()).await;
    app.login("trace@example.com", "wrong password").await;
    // Live one-time tokens of every kind, and rows in the outbox.
    app.post_json("/password/forgot", &json!({"email": "trace@example.com"}))
        .await;
    assert_eq!(
        change_email(&app, &access, "trace.next@example.com", PASSWORD).await,
        StatusCode::ACCEPTED
    );
    app.mailer.wait_for("trace@example.com", 3).await;
    app.mailer.wait_for("trace.next@example.com", 1).await;
    let before = dump_database(&storage).await;
    assert!(before.contains(&user_id), "the dump sees the account");

    let res = app
        .post_json_with_bearer("/account/delete", &access, &json!({"password": PASSWORD}))
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);

    let rows = dump_database(&storage).await.to_lowercase();
    let keys = storage.redis.as_ref().unwrap().dump().await;
    // Rate-limit keys name addresses by their SHA-256, which anyone can compute.
    let hashed = |text: &str| -> String {
        ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let digests = [
        hashed("trace@example.com"),
        hashed("trace.next@example.com"),
        hashed(&user_id),
    ];
    for needle in [
        digests[0].as_str(),
        digests[1].as_str(),
        digests[2].as_str(),
        "trace@example.com",
        "trace.next@example.com",
        user_id.as_str(),
    ] {
        assert!(
            !rows.contains(needle),
            "PostgreSQL still holds {needle}:\n{rows}"
        );
        for (key, value) in &keys {
            assert!(
                !key.contains(needle) && !value.to_lowercase().contains(needle),
                "Redis still holds {needle}: {key} = {value}"
            );
        }
    }
}
