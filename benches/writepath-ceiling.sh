#!/usr/bin/env bash
# How much of a SQLite write is the filter indexes' upkeep (issue 15): benches/writepath.py
# (creates, PATCHes, deletes; 5,000 users, 16 clients) against one build in alternating pairs,
# on a fresh database as the server makes it ("as is"), then on one whose filter indexes
# (attr_values_val, attr_values_num) and trigram triggers were dropped after it was made
# ("no filter indexes": a server no filter could use, for measuring only). The second is an
# upper bound of what any cheaper upkeep of those indexes could give.
#   cargo build --release && benches/writepath-ceiling.sh [PAIRS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/scimitar
pairs=${1:-2}
export RUST_LOG=warn
strip="DROP INDEX attr_values_val; DROP INDEX attr_values_num;
DROP TRIGGER attr_values_trgm_insert; DROP TRIGGER attr_values_trgm_delete;"
run() {
    local label=$1 sql=$2 work url t pid
    work=$(mktemp -d)
    url=sqlite://$work/s.db
    t=$("$bin" token create --database-url "$url" --tenant default --scope write 2>/dev/null)
    if [ -n "$sql" ]; then
        python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' \
            "$work/s.db" "$sql"
    fi
    "$bin" serve --listen 127.0.0.1:18197 --database-url "$url" >"$work/server.log" 2>&1 &
    pid=$!
    sleep 2
    python3 "$root/benches/writepath.py" --url http://127.0.0.1:18197/scim/v2 --token "$t" \
        -n "${SCIMITAR_AB_USERS:-5000}" -c 16 --pid "$pid" | tail -3 | sed "s|^|$label  |"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
for _ in $(seq "$pairs"); do
    run "as is             " ""
    run "no filter indexes " "$strip"
done
