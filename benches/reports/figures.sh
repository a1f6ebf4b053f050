#!/bin/bash
# Time and peak RSS of each report type over N events (release binary).
B=${B:-target/release/auditlog}
W=${W:-/tmp}  # holds events-100k.jsonl and events-1m.jsonl (gen_events.py)
export AUDIT_HMAC_KEY=figures-key-0123456789-abcdefghijklmnopqrs
for n in 100k 1m; do
  d=$W/figlog-$n; rm -rf $d
  /usr/bin/time -f "append $n: %e s, %M KB" $B --data $d append --durability buffered $W/events-$n.jsonl >/dev/null
  for t in access_audit change_audit security_audit compliance_audit user_activity; do
    extra=""; [ $t = compliance_audit ] && extra="--framework soc2_type2"; [ $t = user_activity ] && extra="--user-id user-42"
    for f in json pdf; do
      /usr/bin/time -f "$n $t $f: %e s, %M KB" $B --data $d report --type $t $extra --start 2024-01-01 --end 2024-01-31 --format $f -o $W/fig-$n-$t.$f 2>&1 | tail -1
    done
  done
done
