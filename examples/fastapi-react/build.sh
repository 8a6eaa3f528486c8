#!/usr/bin/env bash
# Builds the example's front end as an app outside this repo would get it:
# packs @progressd/client and @progressd/react from web/packages (npm pack,
# as npm publish would), installs the two tarballs into frontend/ with the
# rest of its dependencies, type-checks it and builds it with Vite.
# Usage: examples/fastapi-react/build.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
web="$here/../../web"

# Packing runs each package's prepack (tsc), which needs web's dev tools.
[ -d "$web/node_modules" ] || (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
rm -rf "$here/frontend/.packs"
mkdir -p "$here/frontend/.packs"
(cd "$web" && npm pack --loglevel=error --pack-destination "$here/frontend/.packs" \
  -w @progressd/client -w @progressd/react >/dev/null)

cd "$here/frontend"
# A tarball packed again keeps its version: drop the installed copies so
# npm installs the new ones.
rm -rf node_modules/@progressd
npm install --no-audit --no-fund --loglevel=error
npm run --silent build
