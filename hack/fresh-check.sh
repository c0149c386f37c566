#!/usr/bin/env bash
# Runs the README's two commands the way a freshly provisioned Debian 12
# machine would, as far as one machine can pretend to be one:
#   - a new, empty Go build cache and module cache (cold builds, every module
#     downloaded from the Go module proxy);
#   - `/` a private mount again (no systemd has made it rshared);
#   - none of cradle's network configs in /etc/cni/net.d, and no default
#     cradle root (/var/lib/cradle) left by an earlier run;
#   - root without sudo: the commands are run exactly as the README writes them.
# Everything it changes is put back at the end. Run it before resolving an
# issue. `hack/fresh-check.sh demo` or `... test` runs only that command.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root (a fresh machine is root without sudo)" >&2; exit 1; }
only=${1:-}

# The README's commands: the first fenced block, one command per line,
# without the trailing comment.
mapfile -t commands < <(awk '/^```/ {n++; next} n == 1 {sub(/[ \t]+#.*$/, ""); if ($0 != "") print}' README.md)
[ ${#commands[@]} -eq 2 ] || { echo "fresh-check: expected two commands in README.md's first block, found: ${commands[*]}" >&2; exit 1; }

scratch=$(mktemp -d /var/tmp/cradle-fresh.XXXXXX)
aside=$scratch/aside
mkdir -p "$aside/cni"
root_was_shared=
restore() {
  set +e
  for f in "$aside"/cni/*; do [ -e "$f" ] && mv "$f" /etc/cni/net.d/; done
  [ -e "$aside/var-lib-cradle" ] && { rm -rf /var/lib/cradle; mv "$aside/var-lib-cradle" /var/lib/cradle; }
  [ -n "$root_was_shared" ] && mount --make-rshared /
  # The module cache is read-only by design.
  chmod -R u+w "$scratch" 2>/dev/null
  rm -rf "$scratch"
}
trap restore EXIT

if findmnt -no PROPAGATION / | grep -q shared; then root_was_shared=1; fi
mount --make-rprivate /
for f in /etc/cni/net.d/*cradle*; do [ -e "$f" ] && mv "$f" "$aside/cni/"; done
if [ -e /var/lib/cradle ]; then
  if [ -e /var/lib/cradle/cradle.lock ] && ! flock -n /var/lib/cradle/cradle.lock true; then
    echo "fresh-check: a cradle daemon holds /var/lib/cradle; stop it first" >&2; exit 1
  fi
  mv /var/lib/cradle "$aside/var-lib-cradle"
fi

export GOCACHE=$scratch/gocache GOMODCACHE=$scratch/gomodcache
echo "fresh-check: / is $(findmnt -no PROPAGATION /); GOCACHE=$GOCACHE GOMODCACHE=$GOMODCACHE; /etc/cni/net.d: $(ls /etc/cni/net.d 2>/dev/null | tr '\n' ' ')"
status=0
for c in "${commands[@]}"; do
  case $only in demo) [[ $c == *demo* ]] || continue ;; test) [[ $c == *test* ]] || continue ;; esac
  echo "fresh-check: \$ $c"
  start=$SECONDS
  if bash -c "$c"; then
    echo "fresh-check: PASS ($((SECONDS - start)) s): $c"
  else
    echo "fresh-check: FAIL ($((SECONDS - start)) s): $c"
    status=1
  fi
done
exit $status
