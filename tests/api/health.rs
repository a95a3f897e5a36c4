use hyper::{Method, StatusCode};

use crate::support::{spawn_app, Backend, PASSWORD};

both!(healthz_and_readyz_are_200_on_the_embedded_default);
async fn healthz_and_readyz_are_200_on_the_embedded_default(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(
        app.request(Method::HEAD, "/healthz", &[], None)
            .await
            .status,
        StatusCode::OK
    );
}

both!(metrics_count_requests_by_route_and_status);
async fn metrics_count_requests_by_route_and_status(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("mo@example.com", PASSWORD).await;
    app.login("mo@example.com", "wrong password").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    assert!(
        text.contains("authd_http_requests_total{route=\"register\",status=\"201\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("authd_http_requests_total{route=\"login\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("authd_http_request_duration_seconds_count{route=\"login\"} 1"),
        "{text}"
    );
    assert!(text.contains("authd_bcrypt_queue_depth 0"), "{text}");
}
