#!/usr/bin/env bash
# Runs pods under a real kubelet on cradle, offline: kubelet in standalone mode
# (no API server) with static pods, talking CRI to a private cradle daemon that
# pulls from a registry on 127.0.0.1. Checks what kubelet users rely on:
#   - a two-container pod with HTTP readiness and exec liveness probes is Ready
#     and serves on its pod IP; /stats/summary has its CPU, memory and network
#   - exec through kubelet's own streaming endpoint
#   - a killed container is restarted by kubelet (restartCount 1, exit 137)
#   - restarting cradle under a running kubelet loses no container
#   - removing the manifest tears the pod down: no container, mount or
#     cgroup of it is left
#
# Takes KUBELET=/path/to/kubelet, or `kubelet` on PATH, or else builds
# v1.36.3 from the Go module proxy (hack/build-k8s.sh). Run as root on Debian 12:
#   KUBELET=/path/to/kubelet ./hack/kubelet-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh
need_root "$@"
export PATH=$PATH:/usr/local/go/bin
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY

kubelet=${KUBELET:-$(command -v kubelet || true)}
if [ -z "$kubelet" ]; then
  ./hack/build-k8s.sh /var/tmp/cradle-k8s-bin kubelet
  kubelet=/var/tmp/cradle-k8s-bin/kubelet
fi
[ -x "$kubelet" ] || { echo "kubelet-smoke: $kubelet is not an executable kubelet" >&2; exit 2; }
./hack/install-deps.sh
mkdir -p bin
go build -o bin/ ./cmd/cradle ./cmd/cradled   # cradled: the daemon `cradle daemon` runs
go build -o bin/demoregistry ./hack/demoregistry

work=$(mktemp -d /tmp/cradle-kubelet.XXXXXX)
state=/run/cradle-kubelet-smoke
sock=$state/cradle.sock
bridge=crkubelet0
cr() { bin/cradle --runtime-endpoint "unix://$sock" "$@"; }
cleanup() {
  set +e
  rm -f "$work"/manifests/*.yaml
  [ -n "${kubelet_pid:-}" ] && kill "$kubelet_pid" 2>/dev/null && wait "$kubelet_pid" 2>/dev/null
  for p in $(cr pods -q 2>/dev/null); do cr rmp -f "$p" >/dev/null 2>&1; done
  [ -n "${daemon_pid:-}" ] && kill -TERM "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  [ -n "${registry_pid:-}" ] && kill -TERM "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
  ip link del "$bridge" 2>/dev/null
  rm -rf "$work" "$state"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\033[31mFAIL: %s\033[0m\n' "$*" >&2; exit 1; }
# wait_for SECONDS WHAT CMD...: polls CMD until it succeeds or time is up.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "$what: not within ${secs}s"
    sleep 0.5
  done
  echo "ok: $what"
}
# pods_json prints kubelet's view of its pods (read-only port).
pods_json() { curl -fsS --noproxy '*' http://127.0.0.1:10255/pods; }
# pod_field POD EXPR: a Python expression over the pod status `st` and
# container statuses by name `cs`.
pod_field() {
  pods_json | python3 -c '
import json, sys
for p in json.load(sys.stdin)["items"]:
    if p["metadata"]["name"] == sys.argv[1]:
        st = p["status"]; cs = {c["name"]: c for c in st.get("containerStatuses", [])}
        print(eval(sys.argv[2]))
' "$1" "$2"
}

step "registry on 127.0.0.1 with locally built images"
bin/demoregistry >"$work/registry.out" 2>"$work/registry.err" &
registry_pid=$!
wait_ready 300 "the registry" "$registry_pid" "$work/registry.err" lines_at_least 3 "$work/registry.out"
busybox=$(sed -n 2p "$work/registry.out")
web=$(sed -n 3p "$work/registry.out")
echo "$busybox $web"

step "cradle daemon (private root, state and CNI bridge $bridge)"
mkdir -p "$work/cni" "$work/manifests" "$work/kubelet" "$work/certs.d"
cat >"$work/cradle.toml" <<EOF
root = "$work/root"
state = "$state"
socket = "$sock"
[registry]
config_path = "$work/certs.d"
[cni]
conf_dir = "$work/cni"
[nri]
socket_path = "$work/nri.sock"
EOF
cat >"$work/cni/10-smoke.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "cradle-kubelet-smoke", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.152.0.0/24"}]], "dataDir": "$work/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
start_daemon() {
  bin/cradle daemon --config "$work/cradle.toml" 2>>"$work/daemon.log" &
  daemon_pid=$!
  wait_for 30 "cradle answers" cr version
}
start_daemon

step "kubelet $("$kubelet" --version) in standalone mode, static pods from $work/manifests"
cat >"$work/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
staticPodPath: $work/manifests
fileCheckFrequency: 2s
syncFrequency: 5s
containerRuntimeEndpoint: unix://$sock
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
readOnlyPort: 10255
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
featureGates: {PodAndContainerStatsFromCRI: true}
EOF
"$kubelet" --config "$work/kubelet.yaml" --root-dir "$work/kubelet" --hostname-override smoke-node \
  >"$work/kubelet.log" 2>&1 &
kubelet_pid=$!
wait_for 60 "kubelet serves its read-only port" pods_json

step "a static pod: web server with probes, and a sidecar"
cat >"$work/manifests/web.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: web
    image: $web
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 2}
    livenessProbe: {exec: {command: [sh, -c, "test -x /usr/bin/demoweb"]}, periodSeconds: 3}
    resources: {limits: {memory: 64Mi, cpu: 200m}, requests: {memory: 32Mi, cpu: 100m}}
  - name: sidecar
    image: $busybox
    command: [sh, -c, "while true; do echo tick; sleep 1; done"]
EOF
pod=web-smoke-node
pod_ready() { [ "$(pod_field $pod 'next((c["status"] for c in st.get("conditions", []) if c["type"] == "Ready"), None)')" = True ]; }
wait_for 90 "pod Ready" pod_ready
ip=$(pod_field $pod 'st["podIP"]')
curl -fsS --noproxy '*' "http://$ip:8080/" || fail "no page from the pod IP $ip"
cr pods; cr ps

step "/stats/summary"
pod_stats() {
  curl -fsS --noproxy '*' http://127.0.0.1:10255/stats/summary | python3 -c '
import json, sys
p = next(p for p in json.load(sys.stdin)["pods"] if p["podRef"]["name"] == sys.argv[1])
assert p["cpu"]["usageCoreNanoSeconds"] > 0 and p["memory"]["workingSetBytes"] > 0 and p["network"]["rxBytes"] > 0, p
' "$pod"
}
wait_for 60 "pod CPU, memory and network in /stats/summary" pod_stats

step "a command through kubelet's /run endpoint (ExecSync)"
out=$(curl -fsSk --noproxy '*' -X POST "https://127.0.0.1:10250/run/default/$pod/web?cmd=hostname")
[ "$out" = "$pod" ] || fail "kubelet /run: got '$out', want the pod hostname '$pod'"
echo "hostname via kubelet: $out"

step "kill the web container: kubelet restarts it"
ctr=$(cr ps -q --name '^web$')
pid=$(cr inspect -o go-template --template '{{.info.pid}}' "$ctr")
kill -9 "$pid"
restarted() { [ "$(pod_field $pod 'str(cs["web"]["restartCount"]) + " " + str(cs["web"]["lastState"].get("terminated", {}).get("exitCode"))')" = "1 137" ]; }
wait_for 60 "restartCount 1 after exit 137" restarted
wait_for 60 "pod Ready again" pod_ready

step "restart cradle under the running kubelet: no container lost"
before=$(cr ps -q | sort)
kill -TERM "$daemon_pid"; wait "$daemon_pid" || true
start_daemon
after=$(cr ps -q | sort)
[ "$before" = "$after" ] || fail "running containers changed across a daemon restart: '$before' → '$after'"
sleep 6 # two kubelet sync periods: give it the chance to (wrongly) restart something
[ "$(pod_field $pod 'str(cs["web"]["restartCount"]) + " " + str(cs["sidecar"]["restartCount"])')" = "1 0" ] ||
  fail "kubelet restarted containers after the daemon restart"
echo "ok: same containers, no restarts"

step "remove the manifest: the pod is torn down and nothing is left"
pod_id=$(cr pods -q --name "$pod")
rm "$work/manifests/web.yaml"
no_pods() { [ -z "$(cr pods -q)" ]; }
wait_for 150 "pod removed by kubelet" no_pods
if grep -q "$pod_id\|$state/containers/" /proc/self/mountinfo; then fail "mounts of the pod left"; fi
no_monitor_cgroups() { ! find /sys/fs/cgroup/memory/kubepods -name 'cradle-conmon-*' 2>/dev/null | grep -q .; }
wait_for 30 "no monitor cgroup left under kubepods" no_monitor_cgroups
echo "ok: no mount, no container, no cgroup left"

step "done"
