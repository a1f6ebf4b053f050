//! Bearer tokens, roles, and the guard against guessing: failed authentications lock an
//! address out for a while, and the `authentication`/`authorization` events that failures
//! cause are rate-limited so that a flood cannot fill the disk.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::chain::ct_eq;
use crate::config::ServerConfig;
use crate::error::{Error, Result};

/// What a token may do. `Admin` may do everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Ingest,
    Read,
    Export,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Export => "export",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "ingest" => Role::Ingest,
            "read" => Role::Read,
            "export" => Role::Export,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

/// A configured token: only the SHA-256 of its secret is held.
pub struct Token {
    pub name: String,
    digest: [u8; 32],
    roles: Vec<Role>,
}

impl Token {
    pub fn allows(&self, role: Role) -> bool {
        self.roles.contains(&Role::Admin) || self.roles.contains(&role)
    }

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }
}

/// The token table.
pub struct Tokens(Vec<Token>);

impl Tokens {
    pub fn from_config(cfg: &ServerConfig) -> Result<Tokens> {
        let mut out: Vec<Token> = Vec::new();
        for t in &cfg.tokens {
            if t.name.trim().is_empty() {
                return Err(Error::Config(
                    "server.tokens: a token has an empty name".into(),
                ));
            }
            if out.iter().any(|o| o.name == t.name) {
                return Err(Error::Config(format!(
                    "server.tokens: the name {:?} is used twice",
                    t.name
                )));
            }
            if t.roles.is_empty() {
                return Err(Error::Config(format!(
                    "server.tokens[{}].roles: give at least one of ingest, read, export, admin",
                    t.name
                )));
            }
            let roles = t
                .roles
                .iter()
                .map(|r| {
                    Role::parse(r).ok_or_else(|| {
                        Error::Config(format!(
                            "server.tokens[{}].roles: unknown role {r:?}; expected ingest, read, export or admin",
                            t.name
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let digest = t.digest()?;
            if out.iter().any(|o| o.digest == digest) {
                return Err(Error::Config(format!(
                    "server.tokens[{}]: the same secret as another token",
                    t.name
                )));
            }
            out.push(Token {
                name: t.name.clone(),
                digest,
                roles,
            });
        }
        Ok(Tokens(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token whose secret is `presented`. Every configured digest is compared, in
    /// constant time, whatever matches: the answer's timing says nothing about which
    /// token, or how much of one, was right.
    pub fn find(&self, presented: &str) -> Option<&Token> {
        self.position(presented).map(|i| &self.0[i])
    }

    /// Where in the table [`find`](Self::find)'s token is (a console session keeps it).
    pub fn position(&self, presented: &str) -> Option<usize> {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (i, t) in self.0.iter().enumerate() {
            if ct_eq(&t.digest, &d) {
                found = Some(i);
            }
        }
        found
    }

    pub fn get(&self, i: usize) -> Option<&Token> {
        self.0.get(i)
    }
}

/// What the guard says about a failure it was told of.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FailureVerdict {
    /// Append an event for this failure (the rate limit allows it).
    pub record: bool,
    /// Failures whose events were suppressed since the last one recorded.
    pub suppressed: u64,
    /// This failure locked the address out (append an `account_lockout` event).
    pub locked_now: bool,
}

struct Addr {
    /// Failures in the current window and when the window began.
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

struct GuardState {
    addrs: HashMap<IpAddr, Addr>,
    minute_start: Instant,
    events_this_minute: u32,
    suppressed: u64,
}

/// Lockout and event rate limiting.
pub struct Guard {
    threshold: u32,
    window: Duration,
    lockout: Duration,
    per_minute: u32,
    state: Mutex<GuardState>,
}

/// Addresses tracked at most; beyond it, entries whose window and lockout have passed go.
const MAX_TRACKED: usize = 65_536;

impl Guard {
    pub fn new(cfg: &ServerConfig) -> Guard {
        Guard {
            threshold: cfg.lockout_threshold,
            window: Duration::from_secs(cfg.lockout_window_secs.max(1)),
            lockout: Duration::from_secs(cfg.lockout_secs),
            per_minute: cfg.auth_failure_events_per_minute,
            state: Mutex::new(GuardState {
                addrs: HashMap::new(),
                minute_start: Instant::now(),
                events_this_minute: 0,
                suppressed: 0,
            }),
        }
    }

    /// Seconds left of `ip`'s lockout, if it is locked out.
    pub fn locked(&self, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let st = self.state.lock();
        st.addrs
            .get(&ip)
            .and_then(|a| a.locked_until)
            .filter(|&u| u > now)
            .map(|u| (u - now).as_secs().max(1))
    }

    /// Whether an event may be appended now (the per-minute budget), and how many were
    /// suppressed before it.
    fn budget(&self, st: &mut GuardState, now: Instant) -> (bool, u64) {
        if now.duration_since(st.minute_start) >= Duration::from_secs(60) {
            st.minute_start = now;
            st.events_this_minute = 0;
        }
        if st.events_this_minute < self.per_minute {
            st.events_this_minute += 1;
            (true, std::mem::take(&mut st.suppressed))
        } else {
            st.suppressed += 1;
            (false, 0)
        }
    }

    /// Records a failed authentication from `ip`.
    pub fn auth_failed(&self, ip: IpAddr) -> FailureVerdict {
        let now = Instant::now();
        let mut st = self.state.lock();
        if st.addrs.len() >= MAX_TRACKED {
            let window = self.window;
            st.addrs.retain(|_, a| {
                now.duration_since(a.window_start) < window
                    || a.locked_until.is_some_and(|u| u > now)
            });
        }
        let mut locked_now = false;
        if self.threshold > 0 {
            let a = st.addrs.entry(ip).or_insert(Addr {
                failures: 0,
                window_start: now,
                locked_until: None,
            });
            if now.duration_since(a.window_start) >= self.window {
                a.failures = 0;
                a.window_start = now;
            }
            a.failures += 1;
            if a.failures >= self.threshold && a.locked_until.is_none_or(|u| u <= now) {
                a.locked_until = Some(now + self.lockout);
                a.failures = 0;
                a.window_start = now;
                locked_now = true;
            }
        }
        let (record, mut suppressed) = self.budget(&mut st, now);
        if locked_now && !record {
            // Recorded anyway: it is not one of the suppressed; hand over the count so far.
            st.suppressed -= 1;
            suppressed = std::mem::take(&mut st.suppressed);
        }
        FailureVerdict {
            record: record || locked_now,
            suppressed,
            locked_now,
        }
    }

    /// Records a permission denial (a valid token without the role).
    pub fn denied(&self) -> FailureVerdict {
        let now = Instant::now();
        let mut st = self.state.lock();
        let (record, suppressed) = self.budget(&mut st, now);
        FailureVerdict {
            record,
            suppressed,
            locked_now: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TokenConfig;

    fn cfg(tokens: Vec<TokenConfig>) -> ServerConfig {
        ServerConfig {
            tokens,
            lockout_threshold: 3,
            auth_failure_events_per_minute: 2,
            ..ServerConfig::default()
        }
    }

    fn token(name: &str, secret: &str, roles: &[&str]) -> TokenConfig {
        TokenConfig {
            name: name.into(),
            token: Some(secret.into()),
            sha256: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn tokens_match_by_hash_and_roles_apply() {
        let hex = crate::chain::hex(&Sha256::digest(b"reader-secret-0123456789"));
        let t = Tokens::from_config(&cfg(vec![
            token("ops", "admin-secret-0123456789", &["admin"]),
            TokenConfig {
                name: "auditor".into(),
                token: None,
                sha256: Some(hex),
                roles: vec!["read".into()],
            },
        ]))
        .unwrap();
        let ops = t.find("admin-secret-0123456789").unwrap();
        assert_eq!(ops.name, "ops");
        assert!(ops.allows(Role::Export) && ops.allows(Role::Ingest));
        let aud = t.find("reader-secret-0123456789").unwrap();
        assert!(aud.allows(Role::Read) && !aud.allows(Role::Export));
        assert!(t.find("reader-secret-012345678").is_none());
        assert!(t.find("").is_none());
    }

    #[test]
    fn bad_token_config_is_refused_by_name() {
        for (tokens, want) in [
            (vec![token("a", "short", &["read"])], "at least 16"),
            (
                vec![token("a", "long-enough-secret-1", &["reader"])],
                "unknown role",
            ),
            (
                vec![token("a", "long-enough-secret-1", &[])],
                "at least one",
            ),
            (
                vec![
                    token("a", "long-enough-secret-1", &["read"]),
                    token("a", "long-enough-secret-2", &["read"]),
                ],
                "used twice",
            ),
            (
                vec![
                    token("a", "long-enough-secret-1", &["read"]),
                    token("b", "long-enough-secret-1", &["read"]),
                ],
                "same secret",
            ),
        ] {
            let e = Tokens::from_config(&cfg(tokens)).err().unwrap().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }

    #[test]
    fn lockout_and_rate_limit() {
        let g = Guard::new(&cfg(vec![]));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let v1 = g.auth_failed(ip);
        assert!(v1.record && !v1.locked_now);
        let v2 = g.auth_failed(ip);
        assert!(v2.record && !v2.locked_now);
        assert!(g.locked(ip).is_none());
        // Third failure: over the per-minute budget, but a lockout is always recorded.
        let v3 = g.auth_failed(ip);
        assert!(v3.locked_now && v3.record);
        assert!(g.locked(ip).is_some());
        assert!(g.locked(other).is_none());
        let v4 = g.auth_failed(other);
        assert!(!v4.record && !v4.locked_now);
        let v5 = g.denied();
        assert!(!v5.record);
    }
}
