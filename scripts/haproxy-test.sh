#!/bin/sh
# haproxy-test.sh: deploy/haproxy.cfg in front of two rosimd replicas that
# share one PostgreSQL database, for real.
#
# Checks that deploy/haproxy.cfg is valid (haproxy -c) and deploy/
# compose.yaml is YAML with the services the README describes; then starts
# a throw-away PostgreSQL 15 (initdb and pg_ctl as user postgres in a
# temporary directory, a unix socket only), two rosimd (build/rosimd, the
# test model) on it, and HAProxy with that configuration on free ports,
# and checks through HAProxy: a write is read back with min_seq; after
# kill -9 of one replica every request still succeeds (a refused
# connection is retried on the other replica at once, before the health
# check notices) and HAProxy's log shows such a retry; then the health
# check takes the dead replica out.  Everything is stopped and removed at
# the end.
#
# Needs root (PostgreSQL runs as user postgres), haproxy, curl, python3-yaml
# and PostgreSQL's server binaries; exit status 0 when every check passed,
# 1 otherwise, 77 when it cannot run here.
set -eu
cd "$(dirname "$0")/.."
name=haproxy-test
curl_cmd="curl --max-time 60"
base=
. scripts/test-lib.sh

rosimd=${ROSIMD:-build/rosimd}
model=tests/fixtures/roformer-sim-tiny
[ "$(id -u)" -eq 0 ] || skip "needs root (PostgreSQL runs as user postgres)"
command -v haproxy >/dev/null 2>&1 || skip "no haproxy (apt-get install haproxy)"
command -v curl >/dev/null 2>&1 || skip "no curl"
python3 -c 'import yaml' 2>/dev/null || skip "no python3-yaml"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] && [ -x "$pgbin/pg_ctl" ] || skip "no PostgreSQL server (apt-get install postgresql-15)"
id postgres >/dev/null 2>&1 || skip "no user postgres"
[ -x "$rosimd" ] || skip "no $rosimd (run make first)"

work=$(mktemp -d /tmp/rosim-haproxy-test.XXXXXX)
chmod 0755 "$work"   # user postgres walks through it
pids=""
cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    for p in $pids; do
        wait "$p" 2>/dev/null || true
    done
    if [ -f "$work/pg/data/postmaster.pid" ]; then
        runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -w -m fast stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- the files as shipped ---------------------------------------------------

check "haproxy -c accepts deploy/haproxy.cfg" haproxy -c -q -f deploy/haproxy.cfg
check "deploy/compose.yaml: PostgreSQL with a volume and a health check, two rosimd on it, haproxy" \
    python3 - deploy/compose.yaml <<'PY'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]
assert set(s) == {"postgres", "rosimd-1", "rosimd-2", "haproxy"}, sorted(s)
assert s["postgres"]["image"].startswith("postgres:15")
assert any(v.endswith(":/var/lib/postgresql/data") for v in s["postgres"]["volumes"])
assert "pg_isready" in s["postgres"]["healthcheck"]["test"]
data = set()
for r in ("rosimd-1", "rosimd-2"):
    cmd = " ".join(s[r]["command"])
    assert "storage.backend=postgresql" in cmd and "storage.dsn=host=postgres " in cmd, cmd
    assert s[r]["build"]["dockerfile"] == "Dockerfile"
    vols = [v for v in s[r]["volumes"] if v.endswith(":/var/lib/rosim/data")]
    assert len(vols) == 1, s[r]["volumes"]
    data.add(vols[0])
    assert s[r]["depends_on"]["postgres"]["condition"] == "service_healthy"
assert len(data) == 2, "the replicas share a snapshot volume"
assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in s["haproxy"]["volumes"]
assert set(c["volumes"]) >= {"pgdata"} | {v.split(":")[0] for v in data}
PY

# --- PostgreSQL, two replicas, HAProxy ----------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

mkdir "$work/pg"
chown postgres "$work/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg/data" -A trust -U rosim -E UTF8 --no-sync \
    >"$work/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$work/initdb.log")"
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-k $work/pg -c listen_addresses= -p 5432" start >/dev/null 2>&1 \
    || die "PostgreSQL did not start: $(tail -3 "$work/pg/log")"
dsn="host=$work/pg port=5432 user=rosim dbname=postgres"

start_replica() {   # start_replica N: rosimd N on a free port; sets port_N, pid_N
    mkdir -p "$work/data-$1"
    "$rosimd" --listen 127.0.0.1:0 --model "$model" --data "$work/data-$1" \
        -o storage.backend=postgresql -o "storage.dsn=$dsn" 2>"$work/rosimd-$1.log" &
    eval "pid_$1=$!"
    pids="$pids $!"
    wait_for 60 grep -q " INFO ready" "$work/rosimd-$1.log" \
        || die "replica $1 did not start: $(tail -3 "$work/rosimd-$1.log")"
    eval "port_$1=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/rosimd-$1.log" | head -n 1)"
}
start_replica 1
start_replica 2
hport=$(free_port)
ROSIM_LISTEN=127.0.0.1:$hport ROSIM_REPLICA_1=127.0.0.1:$port_1 ROSIM_REPLICA_2=127.0.0.1:$port_2 \
    haproxy -db -f deploy/haproxy.cfg >"$work/haproxy.log" 2>&1 &
pids="$pids $!"
base=http://127.0.0.1:$hport
wait_for 10 curl -fsS "$base/readyz" || die "haproxy does not answer: $(tail -3 "$work/haproxy.log")"
say "PostgreSQL, rosimd on :$port_1 and :$port_2, haproxy on :$hport"

# --- through HAProxy ------------------------------------------------------------

expect 201 PUT /v1/collections/lb '{"index":"Flat"}'
req POST /v1/collections/lb/documents '{"documents":[{"id":"q1","text":"怎么开通花呗"},{"id":"q2","text":"花呗怎么还款"}]}'
seq=$(printf '%s' "$body" | sed -n 's/.*"seq":\([0-9]*\).*/\1/p')
check "an upsert through haproxy is acknowledged with its seq ($status $body)" \
    [ "$status" = 200 ] && [ -n "$seq" ]
# requests alternate between the replicas (leastconn): each reads its write
for i in 1 2 3 4; do
    expect 200 GET "/v1/collections/lb/documents/q$((i % 2 + 1))?min_seq=$seq" "" '"text"'
done
expect 200 POST /v1/collections/lb/search "{\"text\":\"花呗如何开通\",\"k\":2,\"min_seq\":$seq}" '"q1"'

kill -9 "$pid_1"
wait "$pid_1" 2>/dev/null || true
say "replica 1 killed"
# before the health check notices (2 failed checks, 2 s apart)
t0=$(ms)
bad=0
for i in 1 2 3 4 5 6; do
    req GET /v1/collections/lb/documents/q1
    [ "$status" = 200 ] || { bad=$((bad + 1)); say "GET -> $status: $body"; }
    req POST /v1/collections/lb/search '{"text":"花呗","k":2}'
    [ "$status" = 200 ] || { bad=$((bad + 1)); say "search -> $status: $body"; }
done
req POST /v1/collections/lb/documents '{"documents":[{"id":"q3","text":"借呗额度"}]}'
[ "$status" = 200 ] || { bad=$((bad + 1)); say "upsert -> $status: $body"; }
check "every request succeeded right after the kill ($(($(ms) - t0)) ms, $bad failed)" [ "$bad" -eq 0 ]
check "haproxy retried on the other replica (a redispatch in its log)" \
    grep -Eq '/\+[0-9]+ [0-9]+/[0-9]+ ' "$work/haproxy.log"
check "the health check takes the dead replica out" \
    wait_for 15 grep -q "rosimd/rosimd-1 is DOWN" "$work/haproxy.log"
expect 200 GET /v1/collections/lb/documents/q3 "" '"借呗额度"'
expect 200 GET /readyz "" '"storage_reachable":true'

summary
