//! Link templates: where the token of an email points.

/// A link template: an http(s) URL containing `{token}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTemplate(String);

impl LinkTemplate {
    pub fn parse(raw: &str) -> Result<LinkTemplate, String> {
        if !raw.contains("{token}") {
            return Err("must contain {token}".into());
        }
        if !(raw.starts_with("http://") || raw.starts_with("https://")) {
            return Err("must be an http:// or https:// URL".into());
        }
        Ok(LinkTemplate(raw.to_string()))
    }

    /// `{base}{path}?token={token}`, the default of each template; `base` is the public
    /// URL, which the configuration has already checked.
    pub fn under(base: &str, path: &str) -> LinkTemplate {
        LinkTemplate(format!("{base}{path}?token={{token}}"))
    }

    /// The link with the token in place.
    pub fn render(&self, token: &str) -> String {
        self.0.replace("{token}", token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_need_an_http_url_with_the_placeholder() {
        assert!(LinkTemplate::parse("https://app.example/verify").is_err());
        assert!(LinkTemplate::parse("ftp://app.example/{token}").is_err());
        let t = LinkTemplate::parse("https://app.example/v#t={token}").unwrap();
        assert_eq!(t.render("abc"), "https://app.example/v#t=abc");
        assert_eq!(
            LinkTemplate::under("http://127.0.0.1:8080", "/verify-email").render("x"),
            "http://127.0.0.1:8080/verify-email?token=x"
        );
    }
}
