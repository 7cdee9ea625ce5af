#!/usr/bin/env bash
# Compatibility check of annal-server with the official KurrentDB clients (Node and Python),
# pinned: builds the server, starts it on a free loopback port over a temporary store, installs
# the clients if missing (node/package-lock.json, python/requirements.txt), runs both scripts,
# stops the server with SIGTERM (it must shut down cleanly); then starts a second server with
# TLS (a throwaway CA and certificate from the tls_cert example) and basic authentication, and
# runs each client's TLS script against it. Fails if anything failed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

cargo build --release -p annal-server --bin annal-server --example tls_cert
work="$(mktemp -d)"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" || return 1
    fi
}
cleanup() {
    stop_server || true
    rm -rf "$work"
}
trap cleanup EXIT
# Stops the server (named $1 in the report) and counts an unclean shutdown as a failure: a
# clean shutdown on SIGTERM is part of the check.
stop_checked() {
    if ! stop_server; then
        echo "$1 did not shut down cleanly:"
        cat "$work/server.log"
        failed=1
    fi
    server_pid=""
}

# Starts annal-server with the flags given, logging to $work/server.log; sets server_pid and
# endpoint (HOST:PORT, read from the line it prints once listening).
start_server() {
    target/release/annal-server --listen 127.0.0.1:0 "$@" >"$work/server.log" 2>&1 &
    server_pid=$!
    endpoint=""
    for _ in $(seq 1 100); do
        endpoint="$(sed -n 's/^annal-server listening on //p' "$work/server.log")"
        [[ -n "$endpoint" ]] && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
        sleep 0.1
    done
    [[ -n "$endpoint" ]] || { echo "annal-server did not start"; cat "$work/server.log"; exit 1; }
    echo "annal-server at $endpoint"
}

start_server --dir "$work/store"
export ANNAL_SERVER="$endpoint"

failed=0

# Node: @kurrent/kurrentdb-client, as locked in package-lock.json.
if [[ ! -d "$here/node/node_modules/@kurrent/kurrentdb-client" ]]; then
    (cd "$here/node" && npm ci --no-audit --no-fund)
fi
echo "== Node client"
(cd "$here/node" && node --test --test-timeout=120000 compat.test.mjs) || failed=1

# Python: kurrentdbclient, pinned with its dependencies, in a venv under target/.
venv="$root/target/compat-venv"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
echo "== Python client"
timeout 300 "$venv/bin/python" "$here/python/compat.py" || failed=1

stop_checked annal-server

# TLS with basic authentication: a second server, a throwaway CA and a certificate it signs
# for 127.0.0.1, one user with a random password.
tls="$work/tls"
target/release/examples/tls_cert "$tls"
password="compat-$RANDOM$RANDOM"
printf '%s\n' "$password" |
    target/release/annal-server --hash-password compat --hash-iterations 10000 >"$tls/users"
start_server --dir "$work/tls-store" --tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" \
    --users "$tls/users"
export ANNAL_TLS_SERVER="$endpoint" ANNAL_TLS_CA="$tls/ca.pem" ANNAL_TLS_USER=compat \
    ANNAL_TLS_PASSWORD="$password"
echo "== Node client, TLS and basic authentication"
(cd "$here/node" && node --test --test-timeout=60000 tls.test.mjs) || failed=1
echo "== Python client, TLS and basic authentication"
timeout 120 "$venv/bin/python" "$here/python/tls.py" || failed=1
stop_checked "annal-server (TLS)"
exit "$failed"
