#!/usr/bin/env bash
# Two Scimitar builds under benches/writepath.py, in alternating pairs (A, B, A, B, ...), each
# run on a fresh database: creates, PATCHes and deletes of 3,000 users (SCIMITAR_AB_USERS)
# from 16 clients, ops/s, writes per commit, the server's CPU and bytes written per op. Shorter than benches/ab.sh (no peers, no GET phase), so
# several pairs fit where the noise needs them. SQLite by default;
# SCIMITAR_AB_BACKEND=postgres uses a fresh database of the Postgres at 127.0.0.1:5432.
# SCIMITAR_AB_SQL_B: SQL run on B's fresh SQLite database before its server starts
# (benches/writepath-ceiling.sh); SCIMITAR_AB_LABEL_A / _B: the labels printed.
#   benches/writepath-ab.sh /tmp/before/target/release/scimitar target/release/scimitar [PAIRS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
a=$(realpath "$1")
b=$(realpath "$2")
pairs=${3:-3}
export RUST_LOG=warn
run() {
    local label=$1 bin=$2 sql=$3 work url t pid
    work=$(mktemp -d)
    if [ "${SCIMITAR_AB_BACKEND:-sqlite}" = postgres ]; then
        PGOPTIONS="-c client_min_messages=warning" psql -q -h 127.0.0.1 -U postgres -d test \
            -c "DROP DATABASE IF EXISTS scimitar_wp_ab" -c "CREATE DATABASE scimitar_wp_ab"
        url=postgres://postgres@127.0.0.1:5432/scimitar_wp_ab
    else
        url=sqlite://$work/s.db
    fi
    t=$("$bin" token create --database-url "$url" --tenant default --scope write 2>/dev/null)
    if [ -n "$sql" ]; then
        # SQLite: the database as the server made it, changed before it starts.
        python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' \
            "$work/s.db" "$sql"
    fi
    "$bin" serve --listen 127.0.0.1:18195 --database-url "$url" >"$work/server.log" 2>&1 &
    pid=$!
    sleep 2
    python3 "$root/benches/writepath.py" --url http://127.0.0.1:18195/scim/v2 --token "$t" \
        -n "${SCIMITAR_AB_USERS:-3000}" -c 16 --pid "$pid" | tail -3 | sed "s|^|$label  |"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
for _ in $(seq "$pairs"); do
    run "${SCIMITAR_AB_LABEL_A:-$a}" "$a" ""
    run "${SCIMITAR_AB_LABEL_B:-$b}" "$b" "${SCIMITAR_AB_SQL_B:-}"
done
