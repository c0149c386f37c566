#!/usr/bin/env bash
# The main job, end to end and offline: build cradle, start `cradle daemon` with
# its built-in defaults (no config file), serve locally built images from a
# registry on 127.0.0.1, pull a web server built from a static Go program, run
# it as a pod, fetch a page from the pod IP, exec into it, show its logs, and
# tear everything down. Run as root on Debian 12 (re-runs itself through sudo
# when started as another user and sudo exists).
#
# The pod network is the first config in /etc/cni/net.d (the default conf_dir).
# If there is none, the demo writes a bridge network there (cradle-demo,
# 10.89.0.0/24) and removes it again at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root "$@"
./hack/install-deps.sh
export PATH=$PATH:/usr/local/go/bin
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY

mkdir -p bin
go build -o bin/ ./cmd/cradle ./cmd/cradled   # cradled: the daemon `cradle daemon` runs
go build -o bin/demoregistry ./hack/demoregistry
# The registry builds the web image's binary with `go build` when it starts:
# build it here first so that, on a cold build cache, the time goes where the
# output shows it and the registry's start is quick.
go build -o /dev/null ./hack/demoweb

work=$(mktemp -d)
demo_cni=/etc/cni/net.d/10-cradle-demo.conflist
cleanup() {
  if [ -n "${pod:-}" ]; then bin/cradle rmp -f "$pod" >/dev/null 2>&1 || true; fi
  [ -n "${daemon_pid:-}" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  if [ -n "${wrote_cni:-}" ]; then rm -f "$demo_cni"; ip link del cradle-demo0 2>/dev/null || true; fi
  [ -n "${registry_pid:-}" ] && kill -TERM "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "local registry with a busybox image built from Debian's busybox-static"
bin/demoregistry >"$work/registry.out" 2>"$work/registry.err" &
registry_pid=$!
wait_ready 300 "the demo registry" "$registry_pid" "$work/registry.err" lines_at_least 3 "$work/registry.out"
image=$(sed -n 2p "$work/registry.out")
web_image=$(sed -n 3p "$work/registry.out")
echo "serving $image and $web_image"

if ! ls /etc/cni/net.d/*.conf /etc/cni/net.d/*.conflist /etc/cni/net.d/*.json >/dev/null 2>&1; then
  step "no pod network in /etc/cni/net.d: writing $demo_cni (removed at the end)"
  mkdir -p /etc/cni/net.d
  cat >"$demo_cni" <<'CNI'
{"cniVersion": "1.0.0", "name": "cradle-demo", "plugins": [
  {"type": "bridge", "bridge": "cradle-demo0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
CNI
  wrote_cni=1
fi

step "cradle daemon with built-in defaults (socket /run/cradle/cradle.sock, root /var/lib/cradle)"
bin/cradle config | sed -n '1,6p'
bin/cradle daemon 2>"$work/daemon.log" &
daemon_pid=$!
wait_ready 60 "cradle daemon" "$daemon_pid" "$work/daemon.log" bin/cradle version
bin/cradle version

step "cradle pull $image $web_image"
bin/cradle pull "$image"
bin/cradle pull "$web_image"

step "cradle images"
bin/cradle images

step "cradle inspecti (image id, tags, digests)"
bin/cradle inspecti -o json "$image"

step "cradle imagefsinfo"
bin/cradle imagefsinfo

step "run the web server as a pod: cradle runp / create / start"
cat >"$work/pod.json" <<POD
{"metadata": {"name": "demo-web", "namespace": "default", "uid": "demo-web-uid"},
 "hostname": "demo-web", "log_directory": "$work/logs",
 "linux": {"security_context": {"namespace_options": {"pid": 1}}}}
POD
cat >"$work/web.json" <<CTR
{"metadata": {"name": "web"}, "image": {"image": "$web_image"}, "log_path": "web.log"}
CTR
pod=$(bin/cradle -t 60s runp "$work/pod.json")
ctr=$(bin/cradle -t 60s create "$pod" "$work/web.json" "$work/pod.json")
bin/cradle start "$ctr"
bin/cradle pods
bin/cradle ps
ip=$(bin/cradle inspectp -q -o go-template --template '{{.status.network.ip}}' "$pod")

step "fetch a page from the pod IP $ip"
# The pod's process (not a local child) is what is waited for here: the
# daemon's pid stands in for "still there", its log is what explains a failure.
page() { curl -fsS --noproxy '*' -o "$work/page" "http://$ip:8080/"; }
wait_ready 30 "the pod's web server at $ip:8080 (cradle daemon log follows)" "$daemon_pid" "$work/daemon.log" page
cat "$work/page"

step "cradle exec $ctr -- sh -c 'hostname; id; ls /usr/bin/demoweb'"
bin/cradle exec "$ctr" sh -c 'hostname; id; ls /usr/bin/demoweb'

step "cradle logs $ctr"
bin/cradle logs "$ctr"

step "tear down: cradle stop / rm / stopp / rmp / rmi"
bin/cradle stop -t 5 "$ctr"
bin/cradle rm "$ctr"
bin/cradle stopp "$pod"
bin/cradle rmp "$pod"
pod=
bin/cradle rmi "$image" "$web_image"
bin/cradle images

step "done: stopping the daemon (SIGTERM)"
