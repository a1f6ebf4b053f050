//! A generator of realistic audit events in the seed's categories, for the demo, the
//! benchmarks and tests. Deterministic for a given seed; no external randomness.

use chrono::{TimeZone, Utc};

use crate::event::{Actor, Event, Resource, Severity};

/// A small, fast deterministic PRNG (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

struct Kind {
    event_type: &'static str,
    actions: &'static [&'static str],
    statuses: &'static [&'static str],
    severities: &'static [Severity],
    resource: &'static str,
    weight: u64,
}

const KINDS: &[Kind] = &[
    Kind {
        event_type: "authentication",
        actions: &[
            "user_login",
            "user_logout",
            "session_created",
            "mfa_verification",
            "password_change",
            "sso_redirect",
        ],
        statuses: &["success", "success", "success", "failed"],
        severities: &[Severity::Info, Severity::Low, Severity::Medium],
        resource: "session",
        weight: 35,
    },
    Kind {
        event_type: "authorization",
        actions: &[
            "model_access",
            "provider_access_check",
            "virtual_key_usage",
            "budget_limit_check",
            "rate_limit_violation",
            "access_denied",
        ],
        statuses: &["success", "success", "blocked", "failed"],
        severities: &[Severity::Low, Severity::Medium, Severity::High],
        resource: "model",
        weight: 35,
    },
    Kind {
        event_type: "configuration_change",
        actions: &[
            "virtual_key_created",
            "virtual_key_updated",
            "virtual_key_deleted",
            "team_updated",
            "budget_adjusted",
            "rate_limit_changed",
            "provider_key_updated",
            "guardrail_updated",
        ],
        statuses: &["success"],
        severities: &[Severity::Medium, Severity::High],
        resource: "virtual_key",
        weight: 10,
    },
    Kind {
        event_type: "data_access",
        actions: &[
            "pii_detected",
            "data_export",
            "log_query",
            "sensitive_config_access",
        ],
        statuses: &["success", "blocked"],
        severities: &[Severity::Low, Severity::Medium, Severity::High],
        resource: "dataset",
        weight: 12,
    },
    Kind {
        event_type: "security_event",
        actions: &[
            "prompt_injection_attempt",
            "jailbreak_attempt",
            "unusual_access_pattern",
            "api_key_abuse",
            "suspicious_ip",
            "guardrail_violation",
        ],
        statuses: &["blocked", "detected", "failed"],
        severities: &[Severity::High, Severity::Critical],
        resource: "request",
        weight: 8,
    },
];

const METHODS: &[&str] = &["password", "sso", "api_key", "oidc"];
const REASONS: &[&str] = &[
    "invalid_password",
    "expired_token",
    "insufficient_scope",
    "rate_limited",
    "ip_blocked",
];

/// Generates events for `actors` distinct users, timestamps advancing from `start_ns`.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Rng,
    actors: u64,
    ts_ns: i64,
    n: u64,
}

impl Generator {
    pub fn new(seed: u64, actors: u64, start_ns: i64) -> Self {
        Generator {
            rng: Rng::new(seed),
            actors: actors.max(1),
            ts_ns: start_ns,
            n: 0,
        }
    }

    /// The default demo/benchmark workload: 1,000 actors from 2024-01-01.
    pub fn standard(seed: u64) -> Self {
        let start = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap();
        Self::new(seed, 1000, start)
    }

    /// The next event (about 300 bytes encoded).
    pub fn next_event(&mut self) -> Event {
        let total: u64 = KINDS.iter().map(|k| k.weight).sum();
        let mut pick = self.rng.below(total);
        let kind = KINDS
            .iter()
            .find(|k| {
                if pick < k.weight {
                    true
                } else {
                    pick -= k.weight;
                    false
                }
            })
            .unwrap_or(&KINDS[0]);
        let r = &mut self.rng;
        let actor = r.below(self.actors);
        self.ts_ns += 1_000_000 + r.below(20_000_000) as i64;
        self.n += 1;
        let action = kind.actions[r.below(kind.actions.len() as u64) as usize];
        let status = kind.statuses[r.below(kind.statuses.len() as u64) as usize];
        let severity = kind.severities[r.below(kind.severities.len() as u64) as usize];
        let ip = std::net::Ipv4Addr::new(203, 0, (113 + actor % 3) as u8, (actor % 250 + 1) as u8);
        let mut e = Event::new(kind.event_type, action);
        e.event_id = Some(format!("evt_{:012}", self.n));
        e.timestamp = Some(Utc.timestamp_nanos(self.ts_ns));
        e.status = status.to_string();
        e.severity = severity;
        e.actor = Actor {
            user_id: Some(format!("user-{actor:05}")),
            email: Some(format!("user{actor}@company.com")),
            ip_address: Some(ip.into()),
        };
        e.resource = Some(Resource {
            kind: kind.resource.to_string(),
            id: Some(format!("{}-{}", kind.resource, r.below(500))),
        });
        e.details = serde_json::json!({
            "auth_method": METHODS[r.below(METHODS.len() as u64) as usize],
            "reason": if status == "success" { "ok" } else { REASONS[r.below(REASONS.len() as u64) as usize] },
            "attempts_count": 1 + r.below(5),
            "request_id": format!("req_{:016x}", r.next_u64()),
            "user_agent": "bifrost-gateway/1.4 (linux; x86_64)",
        })
        .into();
        e
    }
}

impl Iterator for Generator {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        Some(self.next_event())
    }
}
