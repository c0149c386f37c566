#!/usr/bin/env bash
# Installs what cradle's build, tests and demo need on Debian 12, skipping what
# is already there. Needs root and Debian's package mirror. Go: Debian 12's
# golang package is too old, so when /usr/local/go is missing or older than
# go.mod's `go` line, that release is installed there from the Go module proxy
# (the golang.org/toolchain module, as `go` itself fetches toolchains). The
# proxy is the one the machine's Go is configured with (`go env GOPROXY`), or
# $GOPROXY when no Go is installed yet; nothing here names one.
set -euo pipefail
cd "$(dirname "$0")/.."

# runsc: gVisor, the sandboxed RuntimeClass handler the integration tests run.
packages=(runc conmon containernetworking-plugins busybox-static catatonit runsc iptables iproute2 curl ca-certificates unzip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

go_dir=${CRADLE_GO_DIR:-/usr/local/go}
want=$(awk '$1 == "go" {print $2; exit}' go.mod)
have=$("$go_dir/bin/go" env GOVERSION 2>/dev/null | sed 's/^go//' || true)
# go_proxy prints the first usable proxy URL of GOPROXY (a comma- or
# pipe-separated list whose entries may also be "direct" or "off"), taken
# from the environment or else from any Go toolchain on this machine.
go_proxy() {
  local list=${GOPROXY:-} g
  if [ -z "$list" ]; then
    for g in "$go_dir/bin/go" "$(command -v go || true)" /usr/lib/go/bin/go; do
      [ -x "$g" ] && list=$("$g" env GOPROXY 2>/dev/null) && [ -n "$list" ] && break
    done
  fi
  local IFS=',|' p
  for p in $list; do
    case $p in direct|off|"") ;; *) echo "${p%/}"; return ;; esac
  done
}
# older A B: A is an older Go release than B (1.26.2 < 1.26.10).
older() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }
if [ -z "$have" ] || older "$have" "$want"; then
  case $(uname -m) in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "no Go toolchain for $(uname -m)" >&2; exit 1 ;; esac
  mod="v0.0.1-go$want.linux-$arch"
  echo "installing Go $want into $go_dir (was: ${have:-none}) from the Go module proxy" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  proxy=$(go_proxy)
  [ -n "$proxy" ] || { echo "install-deps: need Go $want but no Go module proxy is configured: set GOPROXY (a Go toolchain's \`go env GOPROXY\` is used when there is one)" >&2; exit 1; }
  echo "  from $proxy" >&2
  curl -fsSL --retry 3 -o "$tmp/go.zip" "$proxy/golang.org/toolchain/@v/$mod.zip"
  unzip -q "$tmp/go.zip" -d "$tmp/x"
  src="$tmp/x/golang.org/toolchain@$mod"
  # Module zips keep no file modes: the executables get theirs back.
  chmod +x "$src"/bin/* "$src"/pkg/tool/*/*
  "$src/bin/go" version >/dev/null
  rm -rf "$go_dir.old"
  if [ -e "$go_dir" ]; then mv "$go_dir" "$go_dir.old"; fi
  mkdir -p "$(dirname "$go_dir")"
  mv "$src" "$go_dir"
  rm -rf "$go_dir.old"
fi
