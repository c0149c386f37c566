#!/usr/bin/env bash
# Runs every test of cradle (unit, integration with real runc/conmon/CNI, fuzz
# seed corpora) with the race detector. Run as root on Debian 12 (re-runs
# itself through sudo when started as another user and sudo exists).
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root "$@"
./hack/install-deps.sh
export PATH=$PATH:/usr/local/go/bin
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

go mod download
test -z "$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
go test -race -count=1 -timeout 20m "$@" ./...
