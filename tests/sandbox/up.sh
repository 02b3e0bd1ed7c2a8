#!/usr/bin/env bash
# Starts the sandbox: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok, Traefik, Prometheus and the pod runner, all inside the
# network namespace "$NETNS". Each step waits for its component to be ready and
# stops with the component's name and log file when it is not.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
ROOT=$(cd "$HERE/../.." && pwd)
LOGS=$SANDBOX/logs

if ip netns list 2>/dev/null | grep -qw "$NETNS"; then
  if [ -f "$SANDBOX/ready" ] && in_netns "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1; then
    say "already up (netns $NETNS); 'sandbox down' stops it"; exit 0
  fi
  # A namespace left by a failed start or a killed session: clear it out.
  say "netns $NETNS exists but its API server does not answer; stopping what is left"
  "$HERE/down.sh"
fi
for bin in "$K8S_BIN/kube-apiserver" "$KWOK_BIN/kwok" "$TRAEFIK" "$KUBECTL" "$CARGO_TARGET_DIR/debug/siskin-pod-runner"; do
  [ -x "$bin" ] || die "missing $bin; run: tests/sandbox/sandbox install"
done

# A failed start stops whatever it started, so the next `up` begins clean.
trap 'rc=$?; if [ $rc -ne 0 ]; then "$HERE/down.sh" >/dev/null 2>&1 || true; fi' EXIT

rm -rf "$SANDBOX/etcd" "$SANDBOX/prom" "$LOGS" "$SANDBOX/pids" "$SANDBOX/ready"
mkdir -p "$SANDBOX" "$LOGS/pods" "$SANDBOX/pids" "$SANDBOX/sd"

# A private network namespace with an AnyIP route for the pod range: any
# process may bind a pod IP, and those IPs are valid in EndpointSlices, which
# refuse loopback addresses since Kubernetes 1.33.
ip netns add "$NETNS"
in_netns ip link set lo up
in_netns ip route add local "$POD_CIDR" dev lo

# start NAME PORT CMD... — runs CMD in the netns, detached, logging to $LOGS/NAME.log.
start() {
  local name=$1 port=$2; shift 2
  if [ "$port" != - ] && in_netns ss -Hltn "sport = :$port" | grep -q .; then
    die "$name: port $port is already taken in netns $NETNS; run: tests/sandbox/sandbox down"
  fi
  # No setsid: $! must be the component itself (ip netns exec execs it); a
  # background job of a non-interactive shell already ignores Ctrl-C.
  in_netns "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$SANDBOX/pids/$name"
}
# wait_for NAME SECONDS CHECK... — polls CHECK until it passes; fails naming the
# component and its log when the process died or the time ran out.
wait_for() {
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$SANDBOX/pids/$name")" 2>/dev/null; then
      tail -n 15 "$LOGS/$name.log" >&2 || true
      die "$name exited during start; log: $LOGS/$name.log"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 15 "$LOGS/$name.log" >&2 || true
      die "$name not ready after ${secs}s; log: $LOGS/$name.log"
    fi
    sleep 0.3
  done
}
k() { in_netns "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

say "pki and kubeconfig"
"$HERE/pki.sh" "$SANDBOX" "$KUBECTL" >>"$LOGS/pki.log" 2>&1 || die "pki: generating certificates failed; log: $LOGS/pki.log"

say "etcd"
start etcd 2379 etcd --data-dir "$SANDBOX/etcd" --listen-client-urls http://127.0.0.1:2379 \
  --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380
wait_for etcd 30 in_netns curl -sf http://127.0.0.1:2379/health

say "kube-apiserver v$K8S_VERSION"
P=$SANDBOX/pki
# WatchList off: with it on, the API server turns every watch from
# resourceVersion 0 into a streaming list, which needs etcd progress
# notifications that Debian's etcd lacks. kwok watches from 0, so each of its
# watches failed and new pods waited for a relist, up to ~40 s each.
start kube-apiserver 6443 "$K8S_BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --authorization-mode=RBAC --service-cluster-ip-range=10.96.0.0/16 \
  --disable-admission-plugins=ServiceAccount --allow-privileged=true --endpoint-reconciler-type=none \
  --max-requests-inflight=2000 --max-mutating-requests-inflight=1000 --feature-gates=WatchList=false
wait_for kube-apiserver 90 k get --raw /readyz

say "kube-controller-manager and kube-scheduler"
# A node-monitor grace of an hour: kwok marks pods Ready only once, so a node
# that missed a heartbeat under load, once marked NotReady with its pods,
# would leave them NotReady for good. The node-lifecycle controller still runs
# to lift the not-ready taint the API server puts on a new node.
# The stale-controller consistency checks (beta in 1.36) are off: a
# ReplicaSet sync waits until its informer has seen the resourceVersion of
# its own last write, and without etcd progress notifications (Debian's etcd
# 3.4) that informer only moves on the next ReplicaSet event. In a quiet
# moment a Deployment then kept reporting 0 available pods for minutes while
# its pod ran ("read version ... is not as new as written version").
start kube-controller-manager 10257 "$K8S_BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=10257 --use-service-account-credentials=false \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --controllers='*,-serviceaccount-token-controller' --node-monitor-grace-period=1h --kube-api-qps=200 --kube-api-burst=400 \
  --feature-gates=StaleControllerConsistencyReplicaSet=false,StaleControllerConsistencyDaemonSet=false,StaleControllerConsistencyJob=false,StaleControllerConsistencyStatefulSet=false
start kube-scheduler 10259 "$K8S_BIN/kube-scheduler" --kubeconfig="$KUBECONFIG_FILE" \
  --leader-elect=false --bind-address=127.0.0.1 --secure-port=10259 --kube-api-qps=200 --kube-api-burst=400
wait_for kube-controller-manager 60 in_netns curl -skf https://127.0.0.1:10257/healthz
wait_for kube-scheduler 60 in_netns curl -skf https://127.0.0.1:10259/healthz

say "kwok node $NODE_NAME"
KW=$(go_module_dir "sigs.k8s.io/kwok@v$KWOK_VERSION")
for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  echo ---; cat "$KW/kustomize/stage/$f.yaml"
done >"$SANDBOX/kwok-stages.yaml"
k apply -f "$HERE/manifests/node.yaml" >>"$LOGS/kubectl.log"
start kwok 10247 "$KWOK_BIN/kwok" --kubeconfig="$KUBECONFIG_FILE" --config="$SANDBOX/kwok-stages.yaml" \
  --manage-all-nodes=true --cidr="$POD_CIDR" --node-ip=10.244.0.1 --node-lease-duration-seconds=40 \
  --server-address=127.0.0.1:10247
wait_for kwok 60 k wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s

say "CRDs: Gateway API v$GATEWAY_API_VERSION (standard) and Istio networking ($ISTIO_API_VERSION)"
GW=$(go_module_dir "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION")
ISTIO=$(go_module_dir "istio.io/api@v$ISTIO_API_VERSION")
for f in "$GW"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
  case $f in *vap_safeupgrades*) continue ;; esac
  k apply --server-side -f "$f" >>"$LOGS/kubectl.log" 2>&1 || die "CRD $f was refused; log: $LOGS/kubectl.log"
done
k apply --server-side -f "$ISTIO/kubernetes/customresourcedefinitions.gen.yaml" >>"$LOGS/kubectl.log" 2>&1 \
  || die "Istio CRDs were refused; log: $LOGS/kubectl.log"
for crd in httproutes.gateway.networking.k8s.io gateways.gateway.networking.k8s.io gatewayclasses.gateway.networking.k8s.io \
  virtualservices.networking.istio.io destinationrules.networking.istio.io gateways.networking.istio.io; do
  k wait --for condition=established "crd/$crd" --timeout=30s >>"$LOGS/kubectl.log" 2>&1 || die "CRD $crd missing; log: $LOGS/kubectl.log"
done
if [ -d "$ROOT/manifests/crds" ] && ls "$ROOT"/manifests/crds/*.yaml >/dev/null 2>&1; then
  k apply --server-side -f "$ROOT/manifests/crds/" >>"$LOGS/kubectl.log" 2>&1 || die "Siskin CRDs were refused; log: $LOGS/kubectl.log"
fi

say "Traefik $TRAEFIK_VERSION as the Gateway API data plane (127.0.0.1:8000 in the netns)"
k apply -f "$HERE/manifests/gateway.yaml" >>"$LOGS/kubectl.log"
start traefik 8000 env KUBECONFIG="$KUBECONFIG_FILE" "$TRAEFIK" \
  --entryPoints.web.address=127.0.0.1:8000 --entryPoints.traefik.address=127.0.0.1:9100 \
  --providers.kubernetesgateway=true --providers.providersThrottleDuration=200ms \
  --metrics.prometheus=true --metrics.prometheus.addRoutersLabels=true \
  --metrics.prometheus.buckets=0.002,0.005,0.01,0.015,0.02,0.025,0.03,0.04,0.05,0.075,0.1,0.15,0.2,0.3,0.5,1,2.5,5 \
  --ping=true --log.level=INFO
wait_for traefik 60 in_netns curl -sf http://127.0.0.1:9100/ping
wait_for traefik 60 k wait --for=condition=Programmed gateway/sandbox -n siskin-sandbox --timeout=1s

say "pod runner (real processes on kwok pod IPs: the demo app, and the controller image of $SISKIN_IMAGE_DIR)"
start pod-runner - env KUBECONFIG="$KUBECONFIG_FILE" "$CARGO_TARGET_DIR/debug/siskin-pod-runner" \
  --demo-app "$CARGO_TARGET_DIR/debug/demo-app" --logs "$LOGS/pods" --scrape-targets "$SANDBOX/sd/pods.json" \
  --controller-images "$SISKIN_IMAGE_DIR" --state "$SANDBOX/pod-runner" --node "$NODE_NAME"
wait_for pod-runner 30 test -f "$SANDBOX/sd/pods.json"

say "Prometheus (127.0.0.1:9090 in the netns, 1 s scrapes)"
echo '[{"targets":["127.0.0.1:9100"],"labels":{"job":"traefik"}}]' >"$SANDBOX/sd/traefik.json"
cat >"$SANDBOX/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: traefik
    file_sd_configs: [{files: ['$SANDBOX/sd/traefik.json'], refresh_interval: 1s}]
  - job_name: demo-app
    file_sd_configs: [{files: ['$SANDBOX/sd/pods.json'], refresh_interval: 1s}]
YAML
start prometheus 9090 prometheus --config.file="$SANDBOX/prometheus.yml" --storage.tsdb.path="$SANDBOX/prom" \
  --web.listen-address=127.0.0.1:9090 --web.enable-lifecycle
wait_for prometheus 60 in_netns curl -sf http://127.0.0.1:9090/-/ready
wait_for prometheus 30 sh -c "ip netns exec $NETNS curl -sf 'http://127.0.0.1:9090/api/v1/query?query=up%7Bjob%3D%22traefik%22%7D%3D%3D1' | grep -q '\"value\"'"

touch "$SANDBOX/ready"
say "up in ${SECONDS}s. kubeconfig: $KUBECONFIG_FILE; enter with: tests/sandbox/sandbox exec -- <command>"
