//! Sessions (refresh-token families) and what a presented refresh token is.
//!
//! [`classify`] is the one statement of the rotation rules (SPEC §2, RFC 9700 §4.14.2):
//! repositories only rotate a token that [`TokenState::is_current`] atomically, and report
//! the state of one they could not rotate; the session service turns that state into an
//! answer with this function, and revokes the session when it says so.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::UserId;

/// A session: one login and every refresh token rotated from it. A random UUID, so that
/// naming one (in a token's `sid`, in a URL) reveals nothing and cannot be guessed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    pub fn random() -> SessionId {
        SessionId(uuid::Uuid::new_v4())
    }

    /// A session id as clients write it (a UUID); `None` if it is not one.
    pub fn parse(s: &str) -> Option<SessionId> {
        uuid::Uuid::parse_str(s).ok().map(SessionId)
    }

    pub fn from_uuid(id: uuid::Uuid) -> SessionId {
        SessionId(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0.hyphenated())
    }
}

/// The `User-Agent` a session was started with, as `GET /sessions` shows it: printable
/// ASCII (RFC 9110 asks no more of it), every other character shown as `?` — so that no
/// control, zero-width or bidi character can disguise one device as another — at most
/// [`UserAgent::MAX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent(String);

impl UserAgent {
    pub const MAX_LEN: usize = 256;

    /// `None` for an empty or absent value.
    pub fn parse(raw: &str) -> Option<UserAgent> {
        let text: String = raw
            .trim()
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .take(Self::MAX_LEN)
            .collect();
        (!text.is_empty()).then_some(UserAgent(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A live session, as its user may list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: SystemTime,
    /// When it was last refreshed (or started): when its newest token was issued.
    pub last_used_at: SystemTime,
    pub user_agent: Option<UserAgent>,
}

/// What storage holds about one refresh token, read where it could not be rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenState {
    pub session: SessionId,
    /// Whose session it is.
    pub user: UserId,
    /// When it was spent for its successor, if it was.
    pub rotated_at: Option<SystemTime>,
    pub expires_at: SystemTime,
    /// Its session ended (logout, reuse detected, password reset or change).
    pub session_revoked: bool,
    /// Its account is disabled (so its sessions have ended): the holder may be told.
    pub account_disabled: bool,
}

impl TokenState {
    /// The token may be spent now: unrotated, unexpired, its session live. Repositories
    /// rotate exactly under this condition, atomically.
    pub fn is_current(&self, now: SystemTime) -> bool {
        self.rotated_at.is_none() && !self.session_revoked && self.expires_at > now
    }
}

/// What a presented refresh token turns out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// May be rotated.
    Current,
    /// No such token.
    Unknown,
    Expired,
    /// Its session has ended.
    Revoked,
    /// Already rotated, within the reuse grace (a second tab racing): refused, session kept.
    ReusedWithinGrace,
    /// Already rotated, past the grace: a replay. The session must end.
    ReuseDetected,
}

impl Verdict {
    /// The label of `authd_refresh_total{outcome}`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Current => "rotated",
            Verdict::Unknown => "unknown",
            Verdict::Expired => "expired",
            Verdict::Revoked => "revoked",
            Verdict::ReusedWithinGrace => "reuse_grace",
            Verdict::ReuseDetected => "reuse_detected",
        }
    }
}

/// Classifies a presented token from its stored state (`None`: unknown) at `now`, with the
/// reuse grace `grace` (zero: none). An ended session outranks everything; reuse outranks
/// expiry, so a replayed token is detected even after it would have expired.
pub fn classify(token: Option<&TokenState>, now: SystemTime, grace: Duration) -> Verdict {
    let Some(token) = token else {
        return Verdict::Unknown;
    };
    if token.session_revoked {
        return Verdict::Revoked;
    }
    if let Some(rotated_at) = token.rotated_at {
        // A rotation stamped later than `now` (another replica's clock) counts as just now.
        let since = now.duration_since(rotated_at).unwrap_or_default();
        return if !grace.is_zero() && since <= grace {
            Verdict::ReusedWithinGrace
        } else {
            Verdict::ReuseDetected
        };
    }
    if token.expires_at <= now {
        return Verdict::Expired;
    }
    Verdict::Current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_printable_ascii_and_bounded() {
        let ua = |s: &str| UserAgent::parse(s).map(|u| u.as_str().to_string());
        assert_eq!(ua("  curl/8.5  "), Some("curl/8.5".into()));
        assert_eq!(ua(""), None);
        assert_eq!(ua("   "), None);
        // A bell, a right-to-left override, a zero-width space, a tab, a non-ASCII letter.
        assert_eq!(
            ua("curl\u{7}Phone\u{202e}x\u{200b}y\tz\u{e9}"),
            Some("curl?Phone?x?y?z?".into())
        );
        assert_eq!(ua(&"a".repeat(300)).unwrap().len(), UserAgent::MAX_LEN);
        assert_eq!(
            ua(&"é".repeat(300)).unwrap(),
            "?".repeat(UserAgent::MAX_LEN)
        );
    }

    #[test]
    fn every_state_of_a_presented_token_has_one_verdict() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = |n: u64| Duration::from_secs(n);
        let state = |rotated: Option<SystemTime>, expires: SystemTime, revoked: bool| TokenState {
            session: SessionId::random(),
            user: UserId::random(),
            account_disabled: false,
            rotated_at: rotated,
            expires_at: expires,
            session_revoked: revoked,
        };
        let later = now + s(3600);
        let earlier = now - s(3600);
        #[rustfmt::skip]
        let table: [(&str, Option<TokenState>, Duration, Verdict); 12] = [
            ("unknown", None, s(0), Verdict::Unknown),
            ("live", Some(state(None, later, false)), s(0), Verdict::Current),
            ("live, grace set", Some(state(None, later, false)), s(30), Verdict::Current),
            ("expires this instant", Some(state(None, now, false)), s(0), Verdict::Expired),
            ("expired", Some(state(None, earlier, false)), s(0), Verdict::Expired),
            ("revoked", Some(state(None, later, true)), s(0), Verdict::Revoked),
            ("revoked and rotated", Some(state(Some(now), later, true)), s(0), Verdict::Revoked),
            ("rotated, no grace", Some(state(Some(now), later, false)), s(0), Verdict::ReuseDetected),
            ("rotated within grace", Some(state(Some(now - s(30)), later, false)), s(30), Verdict::ReusedWithinGrace),
            ("rotated past grace", Some(state(Some(now - s(31)), later, false)), s(30), Verdict::ReuseDetected),
            ("rotated by a clock ahead", Some(state(Some(now + s(5)), later, false)), s(1), Verdict::ReusedWithinGrace),
            ("rotated and expired", Some(state(Some(earlier), earlier, false)), s(0), Verdict::ReuseDetected),
        ];
        for (case, token, grace, expected) in table {
            assert_eq!(classify(token.as_ref(), now, grace), expected, "{case}");
            if let Some(token) = token {
                assert_eq!(
                    token.is_current(now),
                    expected == Verdict::Current,
                    "{case}"
                );
            }
        }
    }
}
