//! Who may drive the lab, and how they proved it. The command line sends the lab's token (from
//! the 0600 lab file) as `Authorization: Bearer`; a browser gets in once through a one-time link
//! that sets an `HttpOnly; SameSite=Strict` cookie, so no secret is ever in a page's address
//! after that (addresses end up in history, in screenshots and on shared screens).
//!
//! The caller's kind (cli or page) is decided here, from the credential, and handed to the
//! handlers: a request cannot claim to be someone else.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

use super::control::Who;

/// The cookie the one-time link sets.
pub const COOKIE: &str = "fivehundred_session";

/// How long a one-time link stays usable when nobody opens it.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The most one-time links waiting at once: minting more drops the oldest, so a caller with the
/// token cannot grow the lab's memory without limit.
const MAX_PENDING: usize = 32;

/// The lab's credentials: its token, the browser session's secret, and the one-time codes not
/// yet used.
#[derive(Debug)]
pub struct Sessions {
    token: String,
    /// What the cookie carries: a secret of its own, so the token never sits in a browser.
    page_secret: String,
    pending: Mutex<HashMap<String, Instant>>,
}

/// A random secret of 128 bits, as 32 hex digits (version-4 UUIDs come from the OS's random
/// source).
fn secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Compares without an early exit, so the time taken says nothing about the secret.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    /// Fresh credentials around `token`.
    pub fn new(token: String) -> Sessions {
        Sessions {
            token,
            page_secret: secret(),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// A new lab token.
    pub fn new_token() -> String {
        secret()
    }

    /// Who sent a request with these headers, if anyone the lab knows. The bearer token wins
    /// over a cookie: the command line does not keep cookies.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Who> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| same(b.trim(), &self.token)) {
            return Some(Who::Cli);
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v);
        cookie
            .is_some_and(|c| same(c, &self.page_secret))
            .then_some(Who::Page)
    }

    /// A new one-time code for the dashboard link.
    pub fn mint(&self) -> String {
        let code = secret();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        pending.retain(|_, at| now.duration_since(*at) < LINK_LIFETIME);
        while pending.len() >= MAX_PENDING {
            let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(c, _)| c.clone())
            else {
                break;
            };
            pending.remove(&oldest);
        }
        pending.insert(code.clone(), now);
        code
    }

    /// Uses up `code`: the cookie value to set when it was a live one-time code, once.
    pub fn redeem(&self, code: &str) -> Option<&str> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let found = pending.keys().find(|c| same(c, code)).cloned()?;
        let minted = pending.remove(&found)?;
        (minted.elapsed() < LINK_LIFETIME).then_some(self.page_secret.as_str())
    }

    /// The `Set-Cookie` value for a redeemed link: not readable by scripts, never sent by
    /// another site's page, gone when the browser closes.
    pub fn set_cookie(value: &str) -> String {
        format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_bearer_token_makes_the_caller_the_cli_and_the_cookie_the_page() {
        let s = Sessions::new("tok".into());
        let code = s.mint();
        let cookie = s.redeem(&code).unwrap().to_string();
        assert_eq!(
            s.caller(&headers(&[(header::AUTHORIZATION, "Bearer tok")])),
            Some(Who::Cli)
        );
        assert_eq!(
            s.caller(&headers(&[(
                header::COOKIE,
                &format!("other=1; {COOKIE}={cookie}")
            )])),
            Some(Who::Page)
        );
        assert_eq!(s.caller(&headers(&[])), None);
        assert_eq!(
            s.caller(&headers(&[(header::AUTHORIZATION, "Bearer to")])),
            None
        );
        assert_eq!(
            s.caller(&headers(&[(header::COOKIE, &format!("{COOKIE}=tok"))])),
            None,
            "the token is not a session cookie"
        );
    }

    #[test]
    fn a_one_time_code_opens_the_dashboard_once() {
        let s = Sessions::new("tok".into());
        let code = s.mint();
        assert!(s.redeem("not-a-code").is_none());
        assert!(s.redeem(&code).is_some());
        assert!(s.redeem(&code).is_none(), "a second use is refused");
    }

    #[test]
    fn pending_codes_are_bounded() {
        let s = Sessions::new("tok".into());
        let first = s.mint();
        for _ in 0..MAX_PENDING {
            s.mint();
        }
        assert!(s.redeem(&first).is_none(), "the oldest code was dropped");
        assert!(s.pending.lock().unwrap().len() <= MAX_PENDING);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}
