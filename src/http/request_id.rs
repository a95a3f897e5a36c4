//! `X-Request-Id`: echo a sane incoming one, otherwise make one.

use hyper::header::HeaderValue;
use hyper::HeaderMap;

pub const HEADER: &str = "x-request-id";

/// The incoming id when it is 1–128 characters of `[A-Za-z0-9._:-]` (safe to log and echo),
/// otherwise a new random one.
pub fn from_headers(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(HEADER)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 128
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().simple().to_string())
                .expect("a simple UUID is a valid header value")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_valid_ids_and_replaces_others() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(from_headers(&h), "abc-123_x.y:z");
        h.insert(HEADER, HeaderValue::from_static("bad id with spaces"));
        assert_ne!(from_headers(&h), "bad id with spaces");
        assert_eq!(from_headers(&HeaderMap::new()).len(), 32);
    }
}
