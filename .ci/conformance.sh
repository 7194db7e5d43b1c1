#!/usr/bin/env bash
# Run the scim2-tester SCIM 2.0 conformance checks against a freshly started server.
#
#   bash .ci/conformance.sh BINARY DATABASE_URL
#
# Starts `BINARY serve --listen 127.0.0.1:PORT --database-url DATABASE_URL` with
# SCIMITAR_BOOTSTRAP_TOKEN set to a random token, waits for
# GET /scim/v2/ServiceProviderConfig to answer 200, runs .ci/conformance.py
# and exits with its status. The server is stopped on exit.
#
# Environment:
#   TMPDIR                       where the venv (scimitar-conformance-venv) lives
#   SCIMITAR_CONFORMANCE_TRACE   file to log every HTTP exchange to (optional)
#   CONFORMANCE_ARGS             extra arguments for conformance.py (optional),
#                                e.g. "--allow-skip 'several resource types'"
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: bash $0 BINARY DATABASE_URL" >&2
    exit 2
fi

binary=$1
database_url=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements=$here/conformance-requirements.txt
venv=${TMPDIR:-/tmp}/scimitar-conformance-venv

if [ ! -x "$binary" ]; then
    echo "conformance: $binary is not an executable file" >&2
    exit 2
fi

# (a) venv with the pinned checker; reinstalled only when the pins change.
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp=$venv/.requirements.sha256
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"; then
        echo "conformance: could not install $requirements" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "$wanted" > "$stamp"
fi
py=$venv/bin/python

# (b) random token and a free port, then start the server.
token=$("$py" -c 'import secrets; print(secrets.token_hex(32))')
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
base_url=http://127.0.0.1:$port/scim/v2
server_log=$(mktemp "${TMPDIR:-/tmp}/scimitar-conformance-server.XXXXXX.log")
checks_out=$(mktemp "${TMPDIR:-/tmp}/scimitar-conformance-out.XXXXXX")
server_pid=
launcher=()

cleanup() {
    local rc=$?
    if [ -n "$server_pid" ]; then
        # The process group of the server if setsid made one, else the server alone.
        local target=$server_pid
        if [ ${#launcher[@]} -gt 0 ]; then
            target=-$server_pid
        fi
        kill -TERM -- "$target" 2>/dev/null || true
        # Give it 10 s to stop; an exited server stays a zombie until `wait`.
        for _ in $(seq 1 100); do
            state=$(ps -o stat= -p "$server_pid" 2>/dev/null || true)
            case $state in "" | Z*) break ;; esac
            sleep 0.1
        done
        kill -KILL -- "$target" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -s "$server_log" ]; then
        echo "---- last lines of the server log ($server_log) ----"
        tail -n 100 "$server_log" || true
        echo "---- end of server log ----"
        # Repeat the summary so that it stays the last line of the output.
        summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$checks_out" | tail -n 1 || true)
        echo "${summary:-0 passed, 1 failed}"
    else
        rm -f "$server_log"
    fi
    rm -f "$checks_out"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "conformance: starting $binary on 127.0.0.1:$port"
# setsid puts the server in its own process group, so that cleanup also stops
# any child it spawned.
launcher=()
if command -v setsid >/dev/null 2>&1; then
    launcher=(setsid)
fi
SCIMITAR_BOOTSTRAP_TOKEN=$token "${launcher[@]}" "$binary" serve \
    --listen "127.0.0.1:$port" \
    --database-url "$database_url" \
    >"$server_log" 2>&1 </dev/null &
server_pid=$!

# (c) wait (60 s at most) for an authenticated 200 on ServiceProviderConfig.
if ! SCIM_PID=$server_pid "$py" - "$base_url/ServiceProviderConfig" "$token" <<'EOF'
import os
import sys
import time
import urllib.error
import urllib.request

url, token = sys.argv[1], sys.argv[2]
pid = int(os.environ["SCIM_PID"])
deadline = time.monotonic() + 60
last = "no answer"
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        print("conformance: the server exited before answering", file=sys.stderr)
        sys.exit(1)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            if response.status == 200:
                sys.exit(0)
            last = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        last = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        last = str(exc)
    time.sleep(0.25)
print(f"conformance: {url} did not answer 200 within 60 s (last: {last})", file=sys.stderr)
sys.exit(1)
EOF
then
    echo "0 passed, 1 failed" | tee "$checks_out"
    exit 1
fi

# (d) the checks; (e) cleanup runs on exit and keeps this status.
set +e
# shellcheck disable=SC2086 # CONFORMANCE_ARGS is deliberately word-split
eval "\"$py\" -u \"$here/conformance.py\" ${CONFORMANCE_ARGS:-} -- \"$base_url\" \"$token\"" 2>&1 | tee "$checks_out"
status=${PIPESTATUS[0]}
set -e
exit "$status"
