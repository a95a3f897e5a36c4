//! Request bodies: size limit, media type, JSON into typed request structs; and the JSON
//! response helper.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Problem;
use crate::domain::{Client, ClientAddr};

/// Every response body is a buffer: authd never streams.
pub type Body = Full<Bytes>;
pub type Response = hyper::Response<Body>;

/// Largest accepted request body (SPEC §1).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Largest accepted request line and headers, in all (SPEC §1: past it, 431).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Set by whoever owns the connection, in a request's extensions: raised while the body
/// is being read, so that a connection trickling its body can be told from one whose
/// request is being answered.
#[derive(Clone, Default)]
pub struct BodyReading(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

/// The values of a route pattern's `{name}` segments, in order (set by the router).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathParams(pub Vec<String>);

/// The `n`-th path parameter of a request (the router matched the pattern, so it is there
/// for a route that has it).
pub fn path_param(req: &Request, n: usize) -> Option<&str> {
    req.extensions()
        .get::<PathParams>()
        .and_then(|p| p.0.get(n))
        .map(String::as_str)
}

/// A request whose body has been read in full (at most [`MAX_BODY_BYTES`]).
pub type Request = hyper::Request<Bytes>;

/// Reads the whole body of `req` before anything answers it, so that every response leaves
/// the connection usable (RFC 9112 §9.6). Past 16 KiB, `413` — with `Connection: close`,
/// since the rest of the body is left unread.
pub async fn read_body(req: hyper::Request<Incoming>) -> Result<Request, Problem> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Problem::payload_too_large().closing());
    }
    let reading = req.extensions().get::<BodyReading>().cloned();
    let flag = |on| {
        if let Some(reading) = &reading {
            reading.0.store(on, std::sync::atomic::Ordering::Release);
        }
    };
    flag(true);
    let (parts, body) = req.into_parts();
    let collected = Limited::new(body, MAX_BODY_BYTES).collect().await;
    flag(false);
    match collected {
        Ok(collected) => Ok(hyper::Request::from_parts(parts, collected.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(Problem::payload_too_large().closing())
        }
        Err(_) => Err(Problem::bad_request("could not read the request body").closing()),
    }
}

/// The client of a request, set by the router on every request it passes on.
pub fn client(req: &Request) -> ClientAddr {
    req.extensions()
        .get::<Client>()
        .expect("the router sets the client of every request")
        .addr
}

/// True for `application/json`, with or without parameters such as `charset=utf-8`.
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The JSON object in the body as `T`: 415 unless JSON, 400 when malformed, not an object,
/// mistyped or missing a field. Unknown fields are ignored.
pub fn read_json<T: DeserializeOwned>(req: &Request) -> Result<T, Problem> {
    if !is_json(req) {
        return Err(Problem::unsupported_media_type());
    }
    parse_json(req.body())
}

/// Parses a JSON object with client-safe messages (serde's own may quote the input back).
/// Anything but an object is refused: serde would otherwise read a struct from an array.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(Problem::bad_request("request body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        let message = e.to_string();
        Problem::bad_request(match e.classify() {
            Category::Data if message.starts_with("missing field") => message
                .split(" at line")
                .next()
                .unwrap_or("missing field")
                .to_string(),
            Category::Data => {
                "a field has the wrong type; expected a JSON object of strings".to_string()
            }
            Category::Syntax | Category::Eof | Category::Io => {
                "request body is not valid JSON".to_string()
            }
        })
    })
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    with_type(status, Bytes::from(bytes), "application/json")
}

/// A response with a body of the given media type.
pub fn with_type(status: StatusCode, body: Bytes, media_type: &'static str) -> Response {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

/// `204 No Content`.
pub fn no_content() -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    #[test]
    fn messages_never_echo_input() {
        let p = parse_json::<Login>(br#"{"email":"a@b.co"}"#).unwrap_err();
        assert_eq!(p.detail, "missing field `password`");
        let p = parse_json::<Login>(br#""s3cret-password""#).unwrap_err();
        assert!(!p.detail.contains("s3cret"), "{}", p.detail);
        let p = parse_json::<Login>(br#"{"email":5,"password":"x"}"#).unwrap_err();
        assert_eq!(p.code, "bad_request");
        assert!(parse_json::<Login>(br#"{"email":"a","password":"b","extra":[1]}"#).is_ok());
        for not_an_object in [&br#"["a@b.co","12345678"]"#[..], b" null", b"\"x\"", b"7"] {
            let p = parse_json::<Login>(not_an_object).unwrap_err();
            assert_eq!(p.detail, "request body must be a JSON object");
        }
    }
}
