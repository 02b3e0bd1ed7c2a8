#!/usr/bin/env bash
# Runs inside the sandbox's network namespace (see demo/run.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NS=shop
LOGS=$SISKIN_SANDBOX/logs
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

bold "Installing Siskin's CRDs, the analysis templates, a route and the controller"
kubectl apply --server-side -f "$ROOT/manifests/crds/" >/dev/null
# A previous run's Rollouts hold a finalizer that only a running controller
# removes; release them so the namespace can go.
for r in $(kubectl get rollouts -n "$NS" -o name 2>/dev/null); do
  kubectl patch "$r" -n "$NS" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null
done
kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$NS" >/dev/null
sed 's#http://prometheus.monitoring:9090#http://127.0.0.1:9090#' "$ROOT/analysis-templates/traefik-gateway-api.yaml" \
  | kubectl apply -f - >/dev/null
kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: product-service}
spec:
  parentRefs: [{name: sandbox, namespace: siskin-sandbox}]
  hostnames: [shop.example]
  rules:
    - backendRefs:
        - {name: product-service-stable, port: 80, weight: 100}
        - {name: product-service-canary, port: 80, weight: 0}
YAML
siskin controller --namespace "$NS" --lease-namespace "$NS" --metrics-addr 127.0.0.1:9464 --allow-destination 127.0.0.0/8 >"$LOGS/controller-demo.log" 2>&1 &
pids+=($!)
echo "controller log: $LOGS/controller-demo.log"

# How the demo app behaves: a web service answering in 20 ms at the median
# and 80 ms at the 99th percentile, with 0.1 % 5xx.
P50_MS=20 P99_MS=80 BASE_ERRORS=0.001

rollout() { # VERSION ERROR_RATE [P50_MS P99_MS]
  local p50=${3:-$P50_MS} p99=${4:-$P99_MS}
  cat <<YAML
apiVersion: siskin.io/v1alpha1
kind: Rollout
metadata: {name: product-service, namespace: $NS}
spec:
  replicas: 2
  service: {name: product-service, port: 80, targetPort: 8080}
  template:
    metadata: {labels: {app: product-service}}
    spec:
      containers:
        - name: app
          image: siskin/demo-app:$1
          ports: [{name: http, containerPort: 8080}]
          env:
            - {name: DEMO_VERSION, value: "$1"}
            - {name: DEMO_ERROR_RATE, value: "$2"}
            - {name: DEMO_LATENCY_P50_MS, value: "$p50"}
            - {name: DEMO_LATENCY_P99_MS, value: "$p99"}
  strategy:
    canary:
      trafficRouting: {gatewayAPI: {httpRoute: {name: product-service}}}
      steps:
        - {weight: 20, hold: {min: 10s, max: 4m}}
        - {weight: 50, hold: {min: 10s, max: 4m}}
      scaleDownDelay: 10s
  analysis:
    templates:
      - {name: traefik-error-rate, clusterScope: true}
      - {name: traefik-latency, clusterScope: true}
    onInconclusive: pause
YAML
}

field() { kubectl get rollout product-service -n "$NS" -o jsonpath="{$1}" 2>/dev/null; }

# release VERSION EXPECTED WHAT ERROR_RATE [P50_MS P99_MS] — rolls VERSION
# out, waits for the outcome (promoted, aborted, or paused for a human) and
# counts a surprise: EXPECTED is promoted or aborted.
surprises=0
release() {
  local version=$1 expected=$2 what=$3 started=$SECONDS from outcome
  shift 3
  from=$(field .status.stableRevision)
  bold "Release $version ($what) — watch it live"
  rollout "$version" "$@" | kubectl apply -f - >/dev/null
  siskin status product-service -n "$NS" --watch &
  local watcher=$!
  evidence=
  while :; do
    # The evidence leaves status once a canary is promoted: keep the last,
    # as siskin status describes it.
    lines=$(siskin status product-service -n "$NS" 2>/dev/null | grep '^  analysis' || true)
    [ -n "$lines" ] && evidence=$lines
    phase=$(field .status.phase)
    stable=$(field .status.stableRevision)
    case $phase in
      Aborted) outcome=aborted; break ;;
      Paused) outcome=paused; break ;;
      Healthy) if [ "$stable" != "$from" ]; then outcome=promoted; break; fi ;;
    esac
    if [ $((SECONDS - started)) -gt 600 ]; then outcome="no outcome"; break; fi
    sleep 1
  done
  kill "$watcher" 2>/dev/null || true
  wait "$watcher" 2>/dev/null || true
  lines=$(siskin status product-service -n "$NS" 2>/dev/null | grep '^  analysis' || true)
  [ -n "$lines" ] && evidence=$lines
  bold "Report: $version"
  echo "  outcome:   $outcome after $((SECONDS - started))s (expected: $expected)"
  echo "  message:   $(field .status.message)"
  echo "  stable:    $(field .status.stableRevision)   verdict: $(field .status.verdict)"
  echo "  route:     $(kubectl get httproute product-service -n "$NS" -o jsonpath='{range .spec.rules[0].backendRefs[*]}{.name}={.weight} {end}')"
  echo "  evidence:"
  printf '%s\n' "$evidence"
  [ "$outcome" = "$expected" ] || surprises=$((surprises + 1))
}

bold "First release v1 (p50 ${P50_MS} ms, p99 ${P99_MS} ms, 0.1% 5xx): no canary, it becomes stable"
rollout v1 "$BASE_ERRORS" | kubectl apply -f - >/dev/null
kubectl wait --for=condition=Healthy rollout/product-service -n "$NS" --timeout=180s
loadgen --url http://127.0.0.1:8000/ --rate 300 --duration 30m --header host:shop.example >/dev/null 2>&1 &
pids+=($!)
echo "load: 300 requests/s through the Gateway (Traefik), host shop.example"
sleep 5

release v2 promoted "healthy: as fast as v1, 0.1% 5xx" "$BASE_ERRORS"
release v3 aborted "faulty: 1% 5xx, ten times v1's" 0.01

if [ "$surprises" -eq 0 ]; then bold "Done: v2 promoted, v3 aborted"; else bold "Done, with $surprises unexpected outcome(s)"; fi
echo "The sandbox is still up: tests/sandbox/sandbox exec -- kubectl get rollouts,httproutes -n $NS"
echo "Stop it with: tests/sandbox/sandbox down"
[ "$surprises" -eq 0 ]
