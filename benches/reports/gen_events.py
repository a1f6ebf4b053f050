# Seed-shaped audit events as JSON Lines for the report figures (docs/REPORTS.md):
#   python3 gen_events.py N > events.jsonl   (N events, 2.5 s apart from 2024-01-01)
import json, random, sys
random.seed(7)
n=int(sys.argv[1])
kinds=[("authentication",["user_login","user_logout","password_change","mfa_challenge"],40),
("authorization",["permission_denied","access_granted","role_check"],25),
("configuration_change",["update_config","create_api_key","delete_api_key"],10),
("data_access",["export_logs","read_customer","search"],15),
("security",["sql_injection_attempt","rate_limit_exceeded","brute_force_detected"],10)]
w=[k[2] for k in kinds]
t0=1704067200.0  # 2024-01-01
out=sys.stdout
for i in range(n):
    k=random.choices(kinds,weights=w)[0]
    st="failure" if random.random()<0.15 else "success"
    sev=random.choice(["low","low","low","medium","high","critical"]) if k[0]=="security" else random.choice(["low","medium"])
    t=t0+i*2.5  # 1 M events over ~29 days
    ts=__import__("datetime").datetime.utcfromtimestamp(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    e={"event_type":k[0],"action":random.choice(k[1]),
       "actor":{"user_id":"user-%d"%random.randrange(1000),
                "ip_address":"10.%d.%d.%d"%(random.randrange(4),random.randrange(256),random.randrange(256))},
       "status":st,"severity":sev,"timestamp":ts,"resource":{"type":"item","id":str(random.randrange(5000))},
       "details":{"request_id":"r%08d"%i,"user_agent":"Mozilla/5.0","latency_ms":random.randrange(900)}}
    out.write(json.dumps(e,separators=(",",":"))+"\n")
