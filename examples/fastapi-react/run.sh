#!/usr/bin/env bash
# Starts the example's three processes and stops them together (Ctrl-C):
#   progressd          http://127.0.0.1:$PROGRESSD_PORT (default 8000), with
#                      auth (a secret made on first run) and CORS for the
#                      front end's origin
#   the backend        FastAPI on http://127.0.0.1:$API_PORT (default 8001)
#   the front end      vite preview on http://127.0.0.1:$WEB_PORT (default
#                      5173), proxying /api to the backend: open this one
# Usage: examples/fastapi-react/run.sh
# Settings: SKIP_BUILD=1 (the front end is built already), PROGRESSD_BIN (a
# built progressd; default: go build from this checkout), STATE_DIR (the
# secret and progressd's data; default examples/fastapi-react/.state),
# PYTHON (default /usr/bin/python3, with Debian's python3-fastapi and
# python3-uvicorn).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
PROGRESSD_PORT=${PROGRESSD_PORT:-8000}
API_PORT=${API_PORT:-8001}
WEB_PORT=${WEB_PORT:-5173}
PYTHON=${PYTHON:-/usr/bin/python3}
state=${STATE_DIR:-$here/.state}
mkdir -p "$state"

if [ ! -s "$state/secret" ]; then
  (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' >"$state/secret")
fi
bin=${PROGRESSD_BIN:-}
if [ -z "$bin" ]; then
  bin="$state/progressd"
  (cd "$repo" && go build -o "$bin" ./cmd/progressd)
fi
[ "${SKIP_BUILD:-}" = 1 ] || "$here/build.sh"

pids=()
stop() {
  trap - EXIT INT TERM
  kill "${pids[@]}" 2>/dev/null || true
  wait || true
}
trap stop EXIT
trap 'exit 130' INT TERM

web_origin="http://127.0.0.1:$WEB_PORT"
"$bin" serve --addr "127.0.0.1:$PROGRESSD_PORT" --data-dir "$state/data" --log-level warn \
  --auth-secret-file "$state/secret" --allowed-origins "$web_origin,http://localhost:$WEB_PORT" &
pids+=($!)

# The SDK from this checkout (not needed once `pip install ./sdk/python` put it on the path).
(cd "$here/backend" && PROGRESSD_URL="http://127.0.0.1:$PROGRESSD_PORT" \
  PROGRESSD_AUTH_SECRET_FILE="$state/secret" PYTHONPATH="$repo/sdk/python/src${PYTHONPATH:+:$PYTHONPATH}" \
  exec "$PYTHON" -m uvicorn app:app --host 127.0.0.1 --port "$API_PORT" --log-level warning) &
pids+=($!)

(cd "$here/frontend" && API_PORT=$API_PORT exec node_modules/.bin/vite preview --host 127.0.0.1 --port "$WEB_PORT" --strictPort) &
pids+=($!)

echo "example: open $web_origin (progressd on http://127.0.0.1:$PROGRESSD_PORT, backend on http://127.0.0.1:$API_PORT)"
# Whichever process ends first ends the example.
wait -n
