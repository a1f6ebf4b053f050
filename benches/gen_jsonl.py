"""Writes N seed-shaped JSON Lines (~510 bytes each) for timing `auditlog append`.

python3 benches/gen_jsonl.py 500000 /tmp/events.jsonl   (deterministic; see docs/PERFORMANCE.md)
"""
import json, random, sys
n = int(sys.argv[1]); out = sys.argv[2]
r = random.Random(7)
kinds = [("authentication", ["user_login","user_logout","mfa_verify"], "session"),
         ("authorization", ["model_access","permission_check"], "model"),
         ("configuration_change", ["virtual_key_update","budget_update"], "virtual_key"),
         ("data_access", ["log_query","data_export"], "audit_log"),
         ("security_event", ["prompt_injection","rate_limit_violation"], "endpoint")]
with open(out, "w") as f:
    for i in range(n):
        et, acts, res = kinds[r.randrange(len(kinds))]
        a = r.randrange(1000)
        ms = i * 7
        e = {"event_id": "evt_%012d" % i,
             "timestamp": "2024-01-%02dT%02d:%02d:%02d.%03dZ" % (1 + ms // 86400000 % 28, ms // 3600000 % 24, ms // 60000 % 60, ms // 1000 % 60, ms % 1000),
             "event_type": et, "action": r.choice(acts), "status": r.choice(["success", "failed", "denied"]),
             "severity": r.choice(["info", "low", "medium", "high", "critical"]),
             "actor": {"user_id": "user-%05d" % a, "email": "user%d@company.com" % a, "ip_address": "203.0.%d.%d" % (113 + a % 3, a % 250 + 1)},
             "resource": {"type": res, "id": "%s-%d" % (res, r.randrange(500))},
             "details": {"auth_method": r.choice(["password","sso","api_key","mfa"]), "reason": r.choice(["ok","invalid_password","expired_token"]),
                         "attempts_count": 1 + r.randrange(5), "request_id": "req_%016x" % r.getrandbits(64),
                         "user_agent": "bifrost-gateway/1.4 (linux; x86_64)",
                         "tags": ["prod", "gateway"], "latency_ms": round(r.random() * 100, 3)}}
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
