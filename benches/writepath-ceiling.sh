#!/usr/bin/env bash
# How much of a SQLite write is the filter indexes' upkeep (issue 15): benches/writepath-ab.sh
# (creates, PATCHes, deletes; 5,000 users, 16 clients) with one build on both sides, in
# alternating pairs, on a fresh database as the server makes it ("as is"), then on one whose
# filter indexes (attr_values_val, attr_values_num) and trigram triggers were dropped after
# it was made ("no filter indexes": a server no filter could use, for measuring only). The
# second is an upper bound of what any cheaper upkeep of those indexes could give.
#   cargo build --release && benches/writepath-ceiling.sh [PAIRS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/scimitar
export SCIMITAR_AB_USERS=${SCIMITAR_AB_USERS:-5000}
export SCIMITAR_AB_SQL_B="DROP INDEX attr_values_val; DROP INDEX attr_values_num;
DROP TRIGGER attr_values_trgm_insert; DROP TRIGGER attr_values_trgm_delete;"
export SCIMITAR_AB_LABEL_A="as is            " SCIMITAR_AB_LABEL_B="no filter indexes"
unset SCIMITAR_AB_BACKEND
exec "$root/benches/writepath-ab.sh" "$bin" "$bin" "${1:-2}"
