#!/usr/bin/env bash
# The main job, end to end and offline: build cradle, start `cradle daemon` with
# its built-in defaults (no config file), serve a locally built busybox image
# from a registry on 127.0.0.1, pull it through CRI, list and inspect it, then
# stop everything. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
./hack/install-deps.sh
export PATH=$PATH:/usr/local/go/bin
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY

mkdir -p bin
go build -o bin/cradle ./cmd/cradle
go build -o bin/demoregistry ./hack/demoregistry

work=$(mktemp -d)
cleanup() {
  [ -n "${daemon_pid:-}" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  [ -n "${registry_pid:-}" ] && kill -TERM "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "local registry with a busybox image built from Debian's busybox-static"
bin/demoregistry >"$work/registry.out" 2>"$work/registry.err" &
registry_pid=$!
for _ in $(seq 100); do [ -s "$work/registry.out" ] && [ "$(wc -l <"$work/registry.out")" -ge 3 ] && break; kill -0 $registry_pid 2>/dev/null || { cat "$work/registry.err"; exit 1; }; sleep 0.1; done
image=$(sed -n 2p "$work/registry.out")
echo "serving $image"

step "cradle daemon with built-in defaults (socket /run/cradle/cradle.sock, root /var/lib/cradle)"
bin/cradle config | sed -n '1,6p'
bin/cradle daemon 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 150); do bin/cradle version >/dev/null 2>&1 && break; kill -0 $daemon_pid 2>/dev/null || { cat "$work/daemon.log"; exit 1; }; sleep 0.1; done
bin/cradle version

step "cradle pull $image"
bin/cradle pull "$image"

step "cradle images"
bin/cradle images

step "cradle inspecti (image id, tags, digests)"
bin/cradle inspecti -o json "$image"

step "cradle imagefsinfo"
bin/cradle imagefsinfo

step "cradle rmi"
bin/cradle rmi "$image"
bin/cradle images

step "done: stopping the daemon (SIGTERM)"
