#!/usr/bin/env bash
# Real-browser tests of the web console: the real server (target/release/auditlog, built
# beforehand) on a temporary data directory with seeded events and one record tampered on
# disk, driven by Debian's chromium through playwright-core (tests/console/console.test.mjs).
# Needs node, npm, python3, curl and /usr/bin/chromium (or $CHROMIUM).
# UPDATE_SCREENSHOTS=1 writes the screenshots to docs/console/ (committed); otherwise they go
# to the temporary directory, so that a run never dirties the checkout.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
bin=$root/target/release/auditlog
[ -x "$bin" ] || { echo "run.sh: $bin is missing; build it first (cargo build --release)"; exit 1; }
for tool in node npm python3 curl; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing"; exit 1; }
done
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || { echo "run.sh: $CHROMIUM is missing (apt-get install chromium)"; exit 1; }

work=$(mktemp -d)
pid=""
started=$SECONDS
rand() { head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export AUDIT_HMAC_KEY="console-test-chain-key-0123456789abcdef"
export CONSOLE_ADMIN_TOKEN="admin-$(rand)"
export CONSOLE_READ_TOKEN="read-$(rand)"
export CONSOLE_INGEST_TOKEN="ingest-$(rand)"
read_name=auditor

stop_server() {
    [ -n "$pid" ] || return 0
    local p=$pid rc=0
    pid=""
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" || rc=$?
    return $rc
}
on_exit() {
    local rc=$?
    stop_server || true
    if [ $rc -ne 0 ]; then
        echo "---- server stderr (last 40 lines)"
        tail -40 "$work/stderr" 2>/dev/null || true
        echo "console tests FAILED after $((SECONDS - started)) s"
    fi
    rm -rf "$work"
    exit $rc
}
trap on_exit EXIT

cat >"$work/config.json" <<JSON
{"audit_logs": {"hmac_key": "env.AUDIT_HMAC_KEY", "retention_days": 365},
 "server": {"tokens": [{"name": "admin", "token": "env.CONSOLE_ADMIN_TOKEN", "roles": ["admin"]},
                       {"name": "$read_name", "token": "env.CONSOLE_READ_TOKEN", "roles": ["read"]},
                       {"name": "ingest", "token": "env.CONSOLE_INGEST_TOKEN", "roles": ["ingest"]}],
            "lockout_threshold": 0}}
JSON

# Starts the server on the data directory; sets pid and addr.
start_server() {
    local out=$work/stdout.$1
    "$bin" --data "$work/data" --config "$work/config.json" serve --listen 127.0.0.1:0 \
        >"$out" 2>>"$work/stderr" &
    pid=$!
    addr=""
    for _ in $(seq 1 150); do
        addr=$(sed -n 's/^listening on //p' "$out" 2>/dev/null || true)
        [ -n "$addr" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "run.sh: the server did not start"; exit 1; }
    echo "server listening on $addr"
}

admin="Authorization: Bearer $CONSOLE_ADMIN_TOKEN"
start_server 1

# 40 events shaped like the seed's: five event types, five users, several IPs.
python3 - >"$work/events.ndjson" <<'PY'
import json
types = ["authentication", "authorization", "configuration_change", "data_access", "security_event"]
actions = {"authentication": ["user_login", "user_logout"], "authorization": ["permission_check"],
           "configuration_change": ["settings_update", "role_update"],
           "data_access": ["record_read", "report_export"], "security_event": ["suspicious_activity"]}
users = [("user-alice-001", "alice@company.com"), ("user-bob-002", "bob@company.com"),
         ("user-carol-003", "carol@company.com"), ("user-dave-004", "dave@company.com"),
         ("user-erin-005", "erin@company.com")]
ips = ["203.0.113.42", "198.51.100.7", "192.0.2.15", "10.1.2.3", "2001:db8::17"]
statuses = ["success", "success", "failed", "denied"]
severities = ["info", "low", "medium", "high", "critical"]
for i in range(1, 41):
    t = types[i % 5]
    uid, email = users[(i * 2) % 5]
    ev = {"event_id": f"evt_{i:03d}",
          "timestamp": f"2024-01-15T{8 + i // 60:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.123Z",
          "event_type": t, "action": actions[t][i % len(actions[t])],
          "status": statuses[i % 4], "severity": severities[(i * 3) % 5],
          "actor": {"user_id": uid, "email": email, "ip_address": ips[i % 5]},
          "details": {"attempt": i, "user_agent": "Mozilla/5.0"}}
    if t in ("data_access", "configuration_change"):
        ev["resource"] = {"type": "dataset", "id": f"dataset-{100 + i}"}
    print(json.dumps(ev))
PY
curl -sfS -X POST "$addr/api/audit-logs" -H "$admin" -H 'Content-Type: application/x-ndjson' \
    --data-binary @"$work/events.ndjson" >/dev/null
seeded=$(wc -l <"$work/events.ndjson")
echo "seeded $seeded events"

# Tamper one record on disk (the server stopped): a byte of its email changed, its frame's CRC
# recomputed, so that only the MAC chain can tell.
tampered=evt_023
stop_server || { echo "run.sh: the server did not stop cleanly"; exit 1; }
python3 tests/console/tamper.py "$work/data" "$tampered" "@company.com" "@compan1.com"
start_server 2
verdict=$(curl -sfS "$addr/api/audit-logs/$tampered/verify" -H "$admin")
case "$verdict" in
    *'"valid":false'*) echo "the server flags $tampered: $verdict" ;;
    *) echo "run.sh: the tampered record $tampered is not flagged by the server: $verdict"; exit 1 ;;
esac

if [ "${UPDATE_SCREENSHOTS:-}" = 1 ]; then
    shots=$root/docs/console
else
    shots=$work/screenshots
fi
mkdir -p "$shots"

if [ ! -d tests/console/node_modules/playwright-core ]; then
    echo "npm ci in tests/console"
    (cd tests/console && npm ci --no-audit --no-fund >"$work/npm.log" 2>&1) ||
        { tail -30 "$work/npm.log"; echo "run.sh: npm ci failed"; exit 1; }
fi

BASE_URL="$addr" ADMIN_TOKEN="$CONSOLE_ADMIN_TOKEN" READ_TOKEN="$CONSOLE_READ_TOKEN" \
    READ_NAME="$read_name" INGEST_TOKEN="$CONSOLE_INGEST_TOKEN" TAMPERED_EVENT_ID="$tampered" \
    SEEDED="$seeded" SCREENSHOT_DIR="$shots" \
    node tests/console/console.test.mjs

stop_server || { echo "run.sh: the server did not stop cleanly"; exit 1; }
echo "console tests passed in $((SECONDS - started)) s (screenshots in $shots)"
