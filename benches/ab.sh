#!/usr/bin/env bash
# Two Scimitar builds side by side in one `shared/bench` run (10,000 users, 32
# connections, create/get/patch/delete), each on a fresh database: the before and after of a
# change to the write path, measured together on this noisy machine. Prints each phase's
# ops/s and the server's CPU per operation (ms). Run it twice with the order swapped: the
# second target of a run meets a warmer (or busier) machine. SQLite by default;
# SCIMITAR_AB_BACKEND=postgres puts each on a fresh database of the Postgres at 127.0.0.1:5432.
#   git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release)
#   cargo build --release && benches/ab.sh /tmp/before/target/release/scimitar target/release/scimitar
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/../shared/bench
a=$(realpath "$1")
b=$(realpath "$2")
work=$(mktemp -d)
export RUST_LOG=warn
if [ "${SCIMITAR_AB_BACKEND:-sqlite}" = postgres ]; then
    for x in a b; do
        PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS scimitar_ab_$x" \
            -c "CREATE DATABASE scimitar_ab_$x"
    done
    ua=postgres://postgres@127.0.0.1:5432/scimitar_ab_a
    ub=postgres://postgres@127.0.0.1:5432/scimitar_ab_b
else
    ua=sqlite://$work/a.db
    ub=sqlite://$work/b.db
fi
ta=$("$a" token create --database-url "$ua" --tenant default --scope write 2>/dev/null)
tb=$("$b" token create --database-url "$ub" --tenant default --scope write 2>/dev/null)
"$a" serve --listen 127.0.0.1:18096 --database-url "$ua" >"$work/a.log" 2>&1 &
pa=$!
"$b" serve --listen 127.0.0.1:18097 --database-url "$ub" >"$work/b.log" 2>&1 &
pb=$!
trap 'kill $pa $pb 2>/dev/null || true' EXIT
sleep 3
cd "$bench"
./scimbench run \
  --target "label=A,url=http://127.0.0.1:18096/scim/v2,token=$ta,pid=$pa" \
  --target "label=B,url=http://127.0.0.1:18097/scim/v2,token=$tb,pid=$pb" \
  -n "${SCIMITAR_AB_USERS:-10000}" -c 32 --phases create,get,patch,delete --quiet-wait 30 \
  --out "$work/run.json" >"$work/out.txt" 2>&1
python3 - "$work/run.json" <<'PY'
import json, sys
for t in json.load(open(sys.argv[1]))["targets"]:
    print(t["label"], " | ".join(
        f"{p['phase']} {p['ops_per_s']}/s ({p.get('server_cpu_ms_per_op')} ms)" for p in t["phases"]))
PY
echo "results: $work/run.json"
