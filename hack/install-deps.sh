#!/usr/bin/env bash
# Installs what cradle's build, tests and demo need on Debian 12, skipping what
# is already there. Needs root and Debian's package mirror; Go 1.26+ must be
# installed (Debian 12's golang package is too old).
set -euo pipefail

packages=(runc conmon containernetworking-plugins busybox-static catatonit iptables iproute2 curl ca-certificates)
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

export PATH=$PATH:/usr/local/go/bin
if ! command -v go >/dev/null; then
  echo "Go is not installed: install Go 1.26 or newer into /usr/local/go (https://go.dev/dl/)" >&2
  exit 1
fi
