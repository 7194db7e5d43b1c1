#!/usr/bin/env bash
# The write path side by side (issue 15): the two in-memory peers of ../shared/bench, then
# Scimitar on a fresh SQLite file and on a fresh Postgres database, in one scimbench run
# (10,000 users, 32 connections, create/get/patch/delete), then the CPU budget of the
# issue's targets (benches/budget.py). Needs `../shared/bench/setup.sh`
# and `./peers.sh install` once, Postgres at 127.0.0.1:5432, and a release build:
#   cargo build --release && benches/sidebyside.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bench=$root/../shared/bench
work=$(mktemp -d)
bin=$work/scimitar
cp "$root/target/release/scimitar" "$bin"
db=scimitar_sidebyside
psql -q -h 127.0.0.1 -U postgres -d test -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
s_url=sqlite://$work/s.db
p_url=postgres://postgres@127.0.0.1:5432/$db
export RUST_LOG=warn
ts=$("$bin" token create --database-url "$s_url" --tenant default --scope write 2>/dev/null)
tp=$("$bin" token create --database-url "$p_url" --tenant default --scope write 2>/dev/null)
"$bin" serve --listen 127.0.0.1:18090 --database-url "$s_url" >"$work/s.log" 2>&1 &
s=$!
"$bin" serve --listen 127.0.0.1:18091 --database-url "$p_url" >"$work/p.log" 2>&1 &
p=$!
trap 'kill $s $p 2>/dev/null || true; (cd "$bench" && ./peers.sh stop all >/dev/null) || true' EXIT
sleep 3
cd "$bench"
./peers.sh start scimmy scim2-asgi >/dev/null
./scimbench run $(./peers.sh targets) \
  --target "label=scimitar-sqlite,url=http://127.0.0.1:18090/scim/v2,token=$ts,pid=$s" \
  --target "label=scimitar-pg,url=http://127.0.0.1:18091/scim/v2,token=$tp,pid=$p" \
  -n 10000 -c 32 --phases create,get,patch,delete --quiet-wait 60 --out "$work/run.json"
echo "results: $work/run.json"
python3 "$root/benches/budget.py" "$work/run.json"
