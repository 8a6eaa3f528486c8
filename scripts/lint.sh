#!/usr/bin/env bash
# Runs the linters a reviewer would: gofmt (formatting), staticcheck (bugs, style, unused code)
# and deadcode -test (functions no program or test reaches). Both are pinned
# and installed with `go install pkg@version` into a cache folder named for
# the version, so a machine installs each once and a version bump here is
# the whole upgrade. Any finding fails: fix it, or delete the dead code.
# The web client's type check (tsc with noEmit) runs in scripts/test.sh as
# part of the web build.
# Usage: scripts/lint.sh   (from anywhere in the repo)
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2 # honnef.co/go/tools; supports Go 1.26
XTOOLS_VERSION=v0.52.0     # golang.org/x/tools (cmd/deadcode)

tools="${PROGRESSD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/progressd-tools}"
install() { # install NAME PKG VERSION: prints the binary's path
  local bin="$tools/$1-$3"
  if [ ! -x "$bin/$1" ]; then
    echo "installing $2@$3 into $bin" >&2
    GOBIN="$bin" go install "$2@$3" >&2
  fi
  echo "$bin/$1"
}
staticcheck=$(install staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION")
deadcode=$(install deadcode golang.org/x/tools/cmd/deadcode "$XTOOLS_VERSION")

echo "== gofmt -l"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "$unformatted"
  echo "gofmt: the files above are not formatted; run gofmt -w on them" >&2
  exit 1
fi

echo "== staticcheck ./..."
"$staticcheck" ./...

echo "== deadcode -test ./..."
# deadcode exits 0 whatever it finds, so its output is the verdict.
dead=$("$deadcode" -test ./...)
if [ -n "$dead" ]; then
  echo "$dead"
  echo "deadcode: the functions above are reached by no program or test; delete them (or use them)" >&2
  exit 1
fi
