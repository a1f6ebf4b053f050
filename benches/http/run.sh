#!/usr/bin/env bash
# The server's figures with wrk on loopback: single-event ingest, 1,000-event NDJSON batches,
# and GET queries, each for DURATION seconds, with the server's RSS before and after.
# Then the embedded append_json_batch rate under the same durability, in the same run.
#   bash benches/http/run.sh [DURATION] [DURABILITY]        (defaults 10 sync)
# Needs wrk (Debian) and a release build (cargo build --release --examples).
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-10}
durability=${2:-sync}
bin=target/release/auditlog
work=$(mktemp -d -p "${BENCH_DIR:-target}")
export AUDIT_HMAC_KEY="bench-server-chain-key-0123456789abcdef"
export BENCH_TOKEN="bench-token-0123456789abcdef"
cat >"$work/config.json" <<JSON
{"audit_logs": {"hmac_key": "env.AUDIT_HMAC_KEY"},
 "server": {"tokens": [{"name": "bench", "token": "env.BENCH_TOKEN", "roles": ["admin"]}]}}
JSON
"$bin" --data "$work/data" --config "$work/config.json" serve --listen 127.0.0.1:0 \
    --durability "$durability" >"$work/stdout" 2>"$work/stderr" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$work/stdout" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$work/stdout")
rss() { awk '/VmRSS/ {r=$2} /RssAnon/ {a=$2} END {printf "%d MiB (anon %d MiB)", r/1024, a/1024}' "/proc/$pid/status"; }
export BENCH_TOKEN
# One seed-shaped event of ~300 B for single-event ingest.
event='{"event_type":"authentication","action":"user_login","status":"failed","severity":"medium","actor":{"user_id":"user-alice-001","email":"alice@company.com","ip_address":"203.0.113.42"},"resource":{"type":"session","id":"sess-9f8e7d"},"details":{"auth_method":"password","failure_reason":"invalid_password","attempts_count":3,"user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}}'
printf '%s' "$event" >"$work/one.json"
# The batch: 1,000 seed-shaped events from 1,000 actors, five event types, two statuses.
python3 - "$work/batch.ndjson" <<'PY'
import json, sys
types = [("authentication", "user_login"), ("authorization", "permission_denied"),
         ("configuration_change", "config_update"), ("data_access", "export"),
         ("security_event", "injection_blocked")]
sev = ["info", "low", "medium", "high", "critical"]
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        t, a = types[i % 5]
        f.write(json.dumps({"event_type": t, "action": a,
            "status": "failed" if i % 3 == 0 else "success", "severity": sev[(i // 5) % 5],
            "actor": {"user_id": f"user-{i:04d}", "email": f"user{i}@company.com",
                      "ip_address": f"203.0.{i // 256}.{i % 256}"},
            "resource": {"type": "session", "id": f"sess-{i:06d}"},
            "details": {"auth_method": "password", "attempts_count": i % 7,
                        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}},
            separators=(",", ":")) + "\n")
PY
lua_post() { # body file, content type
    cat <<LUA
local f = io.open("$1", "rb"); local body = f:read("*a"); f:close()
wrk.method = "POST"; wrk.body = body
wrk.headers["Content-Type"] = "$2"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests/s %.0f p50 %.2f ms p99 %.2f ms errors %d non2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.errors.status))
end
LUA
}
lua_post "$work/one.json" application/json >"$work/one.lua"
lua_post "$work/batch.ndjson" application/x-ndjson >"$work/batch.lua"
cat >"$work/get.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests/s %.0f p50 %.2f ms p99 %.2f ms errors %d non2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout, summary.errors.status))
end
LUA
echo "server durability $durability, $dur s per run, wrk -t2 on loopback; RSS at start $(rss)"
run() { # name, connections, script, path
    local out
    out=$(wrk -t2 -c"$2" -d"${dur}s" --latency -s "$3" "$url$4" | grep RESULT)
    local idx
    idx=$(curl -sf -H "Authorization: Bearer $BENCH_TOKEN" "$url/metrics" | awk '/^auditlog_index_memory_bytes/ {printf "%d", $2/1048576}')
    echo "$1 (c=$2): ${out#RESULT } | RSS after $(rss), index ${idx} MiB"
}
run "single-event ingest" 64 "$work/one.lua" /api/audit-logs
run "1,000-event batches" 8 "$work/batch.lua" /api/audit-logs
run "GET an actor's newest 100 + total" 32 "$work/get.lua" "/api/audit-logs?user_id=user-0042&limit=100"
run "GET type + status, newest 100 + total" 32 "$work/get.lua" "/api/audit-logs?event_type=authentication&status=failed&limit=100"
run "single-event ingest again" 64 "$work/one.lua" /api/audit-logs
events=$(curl -sf -H "Authorization: Bearer $BENCH_TOKEN" "$url/api/audit-logs?limit=1&include_details=false" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_count"])')
echo "events stored: $events"
kill -TERM $pid; wait $pid || true
echo "embedded, same machine, same run: append_json_batch of 1,000 lines ($durability), 1 and 8 threads"
PROBE_DIR="${BENCH_DIR:-target}" target/release/examples/throughput 1000000 "json-$durability" 1
PROBE_DIR="${BENCH_DIR:-target}" target/release/examples/throughput 1000000 "json-$durability" 8
