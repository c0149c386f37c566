#!/usr/bin/env bash
# hack/package.sh [OUTDIR]: builds the Debian package of cradle with
# dpkg-deb into OUTDIR (default dist/) and prints its path. It holds
# /usr/bin/cradle and /usr/bin/cradled (the daemon `cradle daemon` execs), the systemd unit, /etc/cradle/cradle.toml (a conffile:
# the commented defaults `cradle config --default` prints) and, under
# /usr/share/doc/cradle/, an example CNI bridge network and the operations
# guide. VERSION overrides the version (default: from git, 0.1.0~git<date>.<sha>).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
export PATH=$PATH:/usr/local/go/bin

arch=$(dpkg --print-architecture)
if [ -z "${VERSION:-}" ]; then
  sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  when=$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d)
  VERSION="0.1.0~git${when}.${sha}"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pkg=$work/cradle

install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/cradle/cradle.d" \
  "$pkg/usr/share/doc/cradle/examples"
# The same build settings as `go vet` and the tests (no -trimpath, cgo as
# configured), so CI reuses their compiled packages.
go build \
  -ldflags "-s -w -X github.com/cradle-runtime/cradle/internal/version.Version=$VERSION" \
  -o "$pkg/usr/bin/" ./cmd/cradle ./cmd/cradled   # cradled: the daemon `cradle daemon` runs
install -m 0644 contrib/systemd/cradle.service "$pkg/lib/systemd/system/cradle.service"
"$pkg/usr/bin/cradle" config --default >"$pkg/etc/cradle/cradle.toml"
chmod 0644 "$pkg/etc/cradle/cradle.toml"
install -m 0644 contrib/cni/10-cradle-bridge.conflist "$pkg/usr/share/doc/cradle/examples/10-cradle-bridge.conflist"
install -m 0644 docs/operations.md "$pkg/usr/share/doc/cradle/operations.md"
cat >"$pkg/usr/share/doc/cradle/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: cradle
Source: https://github.com/cradle-runtime/cradle
COPYRIGHT

echo /etc/cradle/cradle.toml >"$pkg/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: cradle
Version: $VERSION
Architecture: $arch
Maintainer: cradle developers <cradle@localhost>
Installed-Size: $size
Depends: runc, conmon, containernetworking-plugins, catatonit, iptables
Section: admin
Priority: optional
Homepage: https://github.com/cradle-runtime/cradle
Description: Kubernetes container runtime (CRI) on runc and conmon
 cradle serves the Kubernetes Container Runtime Interface on
 /run/cradle/cradle.sock for kubelet: pods with CNI networking, containers
 on runc (or any runc-compatible RuntimeClass handler) under conmon,
 exec/attach/port-forward, stats and image pulls with registry mirrors.
 Containers keep running across daemon restarts and upgrades.
CONTROL

# Where systemd runs: enable (and on a first install start) the unit; an
# upgrade restarts it, which leaves every container running (KillMode=process).
cat >"$pkg/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  systemctl enable cradle.service || true
  if [ -n "$2" ]; then
    systemctl try-restart cradle.service || true
  else
    systemctl start cradle.service || true
  fi
fi
exit 0
POSTINST
# Removal stops the daemon only; containers and /var/lib/cradle stay (see
# docs/operations.md, "Uninstall").
cat >"$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl disable --now cradle.service || true
fi
exit 0
PRERM
cat >"$pkg/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
  rmdir /etc/cradle/cradle.d /etc/cradle 2>/dev/null || true
fi
exit 0
POSTRM
chmod 0755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm" "$pkg/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/cradle_${VERSION}_${arch}.deb
# gzip: xz takes a minute on a busy CI machine for a few MB saved.
dpkg-deb -Zgzip --root-owner-group --build "$pkg" "$deb" >/dev/null
echo "$deb"
