//! `Authorization: Bearer <token>` (RFC 6750 §2.1).

use hyper::header::AUTHORIZATION;
use hyper::HeaderMap;

/// The token of a Bearer `Authorization` header (scheme case-insensitive), if there is one.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    let text = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn reads_bearer_tokens_only() {
        let with = |s: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_static(s));
            h
        };
        assert_eq!(token(&with("Bearer abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(token(&with("bearer xyz")), Some("xyz"));
        assert_eq!(token(&with("Basic dXNlcjpwYXNz")), None);
        assert_eq!(token(&with("Bearer ")), None);
        assert_eq!(token(&HeaderMap::new()), None);
    }
}
