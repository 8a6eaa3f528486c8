#!/usr/bin/env bash
# Runs every test of progressd: vet and the linters (scripts/lint.sh:
# staticcheck, deadcode), the Go tests with the race detector, the web
# client's type check and a check that the committed web assets match a
# fresh build, the web client's tests (vitest, against a real server), the
# npm packages' pack test (packed, installed into a fresh app, imported,
# type-checked), the browser tests (playwright-core driving Chromium at
# /usr/bin/chromium), and the Python SDK's tests (pytest on /usr/bin/python3
# against the real server binary, the wheel built and installed in a fresh
# virtualenv), and the FastAPI + React example end to end in Chromium
# (examples/fastapi-react: packed npm packages, the Python SDK, three
# processes) and the Node worker example (examples/node-worker).
# Usage: scripts/test.sh   (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

scripts/lint.sh

if command -v npm >/dev/null 2>&1; then
  echo "== web: type check (tsc, noEmit), build and compare with the committed web/dist"
  (cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
  if ! git diff --quiet -- web/dist || [ -n "$(git ls-files --others --exclude-standard web/dist)" ]; then
    git status --short web/dist
    echo "web/dist differs from a fresh build: run (cd web && npm run build) and commit web/dist" >&2
    exit 1
  fi
else
  echo "== web: npm not found; skipping the web build check" >&2
  [ "${CI:-}" = "true" ] && { echo "CI needs npm" >&2; exit 1; }
fi

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

# The Python SDK runs on the system's Python: its packages come from Debian
# (.ci/run installs them), and a python3 earlier on PATH may lack them.
PY=/usr/bin/python3
if "$PY" -c 'import httpx, pytest, pytest_asyncio, tqdm' 2>/dev/null; then
  if "$PY" -c 'import pyflakes' 2>/dev/null; then
    echo "== python SDK: pyflakes"
    "$PY" -m pyflakes sdk/python
  fi
  echo "== python SDK: pytest (against the real server binary)"
  bindir=$(mktemp -d)
  trap 'rm -rf "$bindir"' EXIT
  go build -o "$bindir/progressd" ./cmd/progressd
  rc=0
  # timeout: a hang (in a test, or at exit) fails the run instead of stalling it.
  (cd sdk/python && PROGRESSD_BINARY="$bindir/progressd" timeout 900 "$PY" -m pytest -q -p no:cacheprovider) || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "python SDK: pytest collected no tests; run it from sdk/python (see sdk/python/README.md)" >&2
    exit 1
  fi
  [ "$rc" -eq 0 ] || exit "$rc"
else
  echo "== python SDK: $PY lacks httpx/pytest/pytest-asyncio/tqdm; skipping (apt-get install python3-httpx python3-pytest python3-pytest-asyncio python3-tqdm python3-rich python3-jwt python3-venv python3-build python3-hatchling)" >&2
  if [ "${CI:-}" = "true" ] || [ "${PROGRESSD_REQUIRE_SERVICES:-}" = "1" ]; then echo "CI needs the Python SDK's packages" >&2; exit 1; fi
fi

if command -v npm >/dev/null 2>&1; then
  echo "== web: vitest"
  (cd web && npm test)
  echo "== web: pack test (npm pack @progressd/client and @progressd/react, install into a fresh app, import, tsc)"
  (cd web && npm run --silent test:pack)
  if [ -x /usr/bin/chromium ]; then
    echo "== web: browser tests (Chromium)"
    (cd web && npm run e2e)
  else
    echo "== web: /usr/bin/chromium not found; skipping browser tests (apt-get install -y chromium)" >&2
    [ "${CI:-}" = "true" ] && { echo "CI needs Chromium" >&2; exit 1; }
  fi
  echo "== example: node-worker (the packed @progressd/client, a worker process against a real server)"
  examples/pack.sh examples/node-worker/.packs
  (cd examples/node-worker && rm -rf node_modules/@progressd && npm install --no-audit --no-fund --loglevel=error &&
    PROGRESSD_BIN="${bindir:+$bindir/progressd}" timeout 120 npm test)
  if [ -x /usr/bin/chromium ] && "$PY" -c 'import fastapi, uvicorn, httpx, tqdm' 2>/dev/null; then
    echo "== example: fastapi-react (packed npm packages, FastAPI + the Python SDK, Chromium end to end)"
    examples/fastapi-react/build.sh
    (cd examples/fastapi-react/frontend && PROGRESSD_BIN="${bindir:+$bindir/progressd}" timeout 300 npm run --silent e2e)
  else
    echo "== example: fastapi-react needs /usr/bin/chromium and $PY with fastapi, uvicorn, httpx, tqdm; skipping (apt-get install chromium python3-fastapi python3-uvicorn)" >&2
    if [ "${CI:-}" = "true" ] || [ "${PROGRESSD_REQUIRE_SERVICES:-}" = "1" ]; then echo "CI needs the example's packages" >&2; exit 1; fi
  fi
fi
