//! The OpenAPI documents (src/http/openapi.json for the public API, openapi-admin.json for
//! the admin API) are kept true: they list exactly the routes authd serves, and every
//! answer authd gives in these requests — successes and failures — is a documented status
//! with the documented media type and required fields.

use std::collections::BTreeMap;

use authd::router::{Scope, ROUTES};
use hyper::Method;
use serde_json::{json, Value};

use crate::support::{spawn_app_with, Backend, TestApp, TestResponse, PASSWORD};

fn document() -> Value {
    serde_json::from_str(include_str!("../../src/http/openapi.json")).expect("openapi.json is JSON")
}

fn admin_document() -> Value {
    serde_json::from_str(include_str!("../../src/http/openapi-admin.json"))
        .expect("openapi-admin.json is JSON")
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(r) => r
            .trim_start_matches("#/")
            .split('/')
            .fold(doc, |v, k| &v[k]),
        None => value,
    }
}

/// Checks one answer against the document's operation for `method path`.
fn conforms(doc: &Value, method: &str, path: &str, res: &TestResponse) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let status = res.status.as_u16().to_string();
    let response = resolve(doc, &op["responses"][&status]);
    assert!(
        response.is_object(),
        "{method} {path} answered {status}, which is not documented"
    );
    match response["content"].as_object() {
        None => assert!(
            res.body.is_empty(),
            "{method} {path} {status} has an undocumented body"
        ),
        Some(content) => {
            let (media, spec) = content.iter().next().unwrap();
            let actual = res.header("content-type").unwrap_or_default();
            assert!(
                actual.starts_with(media.as_str()),
                "{method} {path} {status}: {actual} is not {media}"
            );
            let schema = resolve(doc, &spec["schema"]);
            if media.contains("json") {
                let body = res.json();
                for field in schema["required"].as_array().into_iter().flatten() {
                    let field = field.as_str().unwrap();
                    assert!(
                        !body[field].is_null(),
                        "{method} {path} {status}: no {field} in {body}"
                    );
                }
            }
        }
    }
    for (name, _) in response["headers"].as_object().into_iter().flatten() {
        assert!(
            res.header(&name.to_lowercase()).is_some(),
            "{method} {path} {status}: no {name} header"
        );
    }
}

/// The paths and methods of `doc`, and those of the routes `admin` picks.
fn documented_and_served(doc: &Value, admin: bool) -> [BTreeMap<String, Vec<String>>; 2] {
    assert_eq!(doc["openapi"], "3.1.0");
    let mut served: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for route in ROUTES.iter().filter(|r| (r.scope == Scope::Admin) == admin) {
        // OpenAPI writes a rest-of-path parameter like any other.
        served
            .entry(route.path.replace("{*", "{"))
            .or_default()
            .push(route.method.as_str().to_lowercase());
    }
    let documented: BTreeMap<String, Vec<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let mut methods: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
            methods.sort();
            (path.clone(), methods)
        })
        .collect();
    for methods in served.values_mut() {
        methods.sort();
    }
    [documented, served]
}

#[test]
fn the_documents_list_exactly_the_served_routes() {
    let [documented, served] = documented_and_served(&document(), false);
    assert_eq!(documented, served);
    let [documented, served] = documented_and_served(&admin_document(), true);
    assert_eq!(documented, served);
}

async fn check(
    doc: &Value,
    app: &TestApp,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    let res = match (method, body) {
        ("post", Some(b)) => app.post_json(path, &b).await,
        ("post", None) => {
            app.request(
                Method::POST,
                path,
                &[("content-type", "text/plain")],
                Some(b"x".to_vec()),
            )
            .await
        }
        _ => app.get(path).await,
    };
    let doc_path = path.split('?').next().unwrap();
    conforms(doc, method, doc_path, &res);
    res
}

#[tokio::test]
async fn every_answer_of_a_flow_is_documented() {
    let doc = document();
    let app = spawn_app_with(
        Backend::Memory,
        &[("AUTH_RESEND_MAX", "1"), ("AUTH_LOGIN_MAX_FAILURES", "2")],
    )
    .await;
    let creds = json!({"email": "doc@example.com", "password": PASSWORD});
    check(&doc, &app, "post", "/register", Some(creds.clone())).await;
    check(&doc, &app, "post", "/register", Some(creds.clone())).await; // 409
    check(
        &doc,
        &app,
        "post",
        "/register",
        Some(json!({"email": "bad", "password": PASSWORD})),
    )
    .await;
    check(&doc, &app, "post", "/register", None).await; // 415
    check(&doc, &app, "post", "/login", Some(creds.clone())).await; // 403
    check(
        &doc,
        &app,
        "post",
        "/resend-verification",
        Some(json!({"email": "doc@example.com"})),
    )
    .await;
    check(
        &doc,
        &app,
        "post",
        "/resend-verification",
        Some(json!({"email": "doc@example.com"})),
    )
    .await; // 429
    check(
        &doc,
        &app,
        "post",
        "/resend-verification",
        Some(json!({"email": "none@example.com"})),
    )
    .await; // 404
    let link = app.verification_path("doc@example.com", 1).await;
    check(&doc, &app, "get", &link, None).await;
    check(&doc, &app, "get", &link, None).await; // 400
    let pair = check(&doc, &app, "post", "/login", Some(creds.clone()))
        .await
        .json();
    let refresh = pair["refresh_token"].as_str().unwrap();
    let next = check(
        &doc,
        &app,
        "post",
        "/refresh",
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    check(
        &doc,
        &app,
        "post",
        "/refresh",
        Some(json!({"refresh_token": refresh})),
    )
    .await; // 401
    check(&doc, &app, "post", "/refresh", Some(json!({}))).await; // 400
    check(
        &doc,
        &app,
        "post",
        "/logout",
        Some(json!({"refresh_token": next.json()["refresh_token"]})),
    )
    .await;
    check(
        &doc,
        &app,
        "post",
        "/logout",
        Some(json!({"refresh_token": 1})),
    )
    .await; // 400
    check(
        &doc,
        &app,
        "post",
        "/password/forgot",
        Some(json!({"email": "doc@example.com"})),
    )
    .await; // 202
    check(
        &doc,
        &app,
        "post",
        "/password/forgot",
        Some(json!({"email": "nope"})),
    )
    .await; // 400
    check(
        &doc,
        &app,
        "post",
        "/password/reset",
        Some(json!({"token": "A".repeat(43), "password": PASSWORD})),
    )
    .await; // 400
    let change = json!({"current_password": PASSWORD, "new_password": "another passphrase"})
        .to_string()
        .into_bytes();
    let res = app
        .request(
            Method::POST,
            "/password/change",
            &[("content-type", "application/json")],
            Some(change.clone()),
        )
        .await;
    conforms(&doc, "post", "/password/change", &res); // 401
    let access = app.login("doc@example.com", PASSWORD).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = format!("Bearer {access}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    let res = app
        .request(Method::POST, "/password/change", &headers, Some(change))
        .await;
    assert_eq!(res.status, 204);
    conforms(&doc, "post", "/password/change", &res);
    let access = app
        .login("doc@example.com", "another passphrase")
        .await
        .json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let bearer = |method: Method, path: &'static str, token: Option<&str>| {
        let (app, doc) = (&app, &doc);
        let token = token.map(String::from);
        async move {
            let res = match &token {
                Some(t) => app.with_bearer(method.clone(), path, t).await,
                None => app.request(method.clone(), path, &[], None).await,
            };
            let documented = if path.starts_with("/sessions/") {
                "/sessions/{id}"
            } else {
                path
            };
            conforms(doc, &method.as_str().to_lowercase(), documented, &res);
            res
        }
    };
    for path in ["/authz", "/userinfo", "/sessions"] {
        assert_eq!(bearer(Method::GET, path, Some(&access)).await.status, 200);
        assert_eq!(bearer(Method::GET, path, None).await.status, 401);
    }
    let unknown = "/sessions/00000000-0000-4000-8000-000000000000";
    assert_eq!(
        bearer(Method::DELETE, unknown, Some(&access)).await.status,
        404
    );
    assert_eq!(bearer(Method::DELETE, unknown, None).await.status, 401);
    assert_eq!(
        bearer(Method::DELETE, "/sessions", Some(&access))
            .await
            .status,
        204
    );
    assert_eq!(
        bearer(Method::DELETE, "/sessions", Some(&access))
            .await
            .status,
        401
    );
    for _ in 0..3 {
        check(
            &doc,
            &app,
            "post",
            "/login",
            Some(json!({"email": "doc@example.com", "password": "wrong password"})),
        )
        .await;
    } // 401, 401, 429
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        check(&doc, &app, "get", path, None).await;
    }
}
