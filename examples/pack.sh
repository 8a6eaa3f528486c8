#!/usr/bin/env bash
# Packs @progressd/client and @progressd/react from web/packages into DIR
# (npm pack, as npm publish would: each package's prepack builds its dist/),
# so an example installs them as an app outside this repo would.
# Usage: examples/pack.sh DIR
set -euo pipefail
dest=$(mkdir -p "$1" && cd "$1" && pwd)
web="$(cd "$(dirname "$0")/../web" && pwd)"
# Packing runs tsc, which needs web's dev tools.
[ -e "$web/node_modules/@progressd/client" ] || (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
rm -f "$dest"/progressd-*.tgz
(cd "$web" && npm pack --loglevel=error --pack-destination "$dest" -w @progressd/client -w @progressd/react >/dev/null)
