#!/usr/bin/env bash
# Runs every test of progressd: vet, the Go tests with the race detector,
# and a check that the committed web assets match a fresh build.
# Usage: scripts/test.sh   (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== go vet"
go vet ./...

if command -v npm >/dev/null 2>&1; then
  echo "== web: build and compare with the committed web/dist"
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
