#!/usr/bin/env bash
# Builds Kubernetes binaries (default: kubelet) of one release from the Go
# module proxy, with nothing else: a throwaway module that requires
# k8s.io/kubernetes at K8S_VERSION and replaces each of its staging modules
# (which its go.mod points at ./staging/src/...) by the published twin
# (k8s.io/api v0.36.3 for k8s.io/kubernetes v1.36.3, and so on).
#
#   hack/build-k8s.sh OUTDIR [CMD...]     e.g. hack/build-k8s.sh /var/tmp/k8s kubelet
#
# A binary already in OUTDIR is kept. Nothing built lands in the checkout.
set -euo pipefail
out=${1:?usage: build-k8s.sh OUTDIR [CMD...]}; shift
cmds=("$@"); [ ${#cmds[@]} -gt 0 ] || cmds=(kubelet)
version=${K8S_VERSION:-v1.36.3}
export PATH=$PATH:/usr/local/go/bin
mkdir -p "$out"
out=$(cd "$out" && pwd)

missing=()
for c in "${cmds[@]}"; do [ -x "$out/$c" ] || missing+=("$c"); done
[ ${#missing[@]} -gt 0 ] || exit 0

mod=${K8S_BUILD_DIR:-/var/tmp/cradle-k8s-$version}
mkdir -p "$mod"
cd "$mod"
if [ ! -f go.mod ]; then
  kgomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  [ -f "$kgomod" ] || { echo "build-k8s: no go.mod for k8s.io/kubernetes@$version" >&2; exit 1; }
  twin=v0.${version#v1.}
  {
    echo "module cradle.local/k8s-build"
    echo
    sed -n 's/^go \(.*\)/go \1/p' "$kgomod"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$twin"'#p' "$kgomod"
    echo ")"
  } >go.mod.new
  mv go.mod.new go.mod
fi
for c in "${missing[@]}"; do
  echo "build-k8s: building $c $version (first build takes minutes)" >&2
  # The version a release build stamps in, so kubelet reports v1.36.3, not v0.0.0-master.
  minor=${version#v1.}; minor=${minor%%.*}
  v=k8s.io/component-base/version
  go build -mod=mod -trimpath -o "$out/$c" \
    -ldflags "-X $v.gitVersion=$version -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    "k8s.io/kubernetes/cmd/$c"
done
