#!/usr/bin/env bash
# Runs every test of progressd: vet and the linters (scripts/lint.sh:
# staticcheck, deadcode), the Go tests with the race detector, the web
# client's type check and a check that the committed web assets match a
# fresh build, the web
# client's tests (vitest, against a real server) and the browser tests
# (playwright-core driving Chromium at /usr/bin/chromium).
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

if command -v npm >/dev/null 2>&1; then
  echo "== web: vitest"
  (cd web && npm test)
  if [ -x /usr/bin/chromium ]; then
    echo "== web: browser tests (Chromium)"
    (cd web && npm run e2e)
  else
    echo "== web: /usr/bin/chromium not found; skipping browser tests (apt-get install -y chromium)" >&2
    [ "${CI:-}" = "true" ] && { echo "CI needs Chromium" >&2; exit 1; }
  fi
fi
