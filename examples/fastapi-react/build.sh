#!/usr/bin/env bash
# Builds the example's front end as an app outside this repo would get it:
# packs @progressd/client and @progressd/react (../pack.sh), installs the
# two tarballs into frontend/ with the rest of its dependencies, type-checks
# it and builds it with Vite.
# Usage: examples/fastapi-react/build.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/../pack.sh" "$here/frontend/.packs"
cd "$here/frontend"
# A tarball packed again keeps its version: drop the installed copies so
# npm installs the new ones.
rm -rf node_modules/@progressd
npm install --no-audit --no-fund --loglevel=error
npm run --silent build
