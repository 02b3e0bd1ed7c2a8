# Shared settings of the sandbox scripts; sourced, never run.
# Versions are pinned here and every cache directory is keyed by them, so a
# version bump rebuilds and an unchanged version starts in seconds.
K8S_VERSION=${K8S_VERSION:-1.36.3}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
GATEWAY_API_VERSION=${GATEWAY_API_VERSION:-1.5.1}
ISTIO_API_VERSION=${ISTIO_API_VERSION:-1.30.8}
TRAEFIK_VERSION=${TRAEFIK_VERSION:-3.7.15}
KUBECTL_VERSION=${KUBECTL_VERSION:-1.37.1}
HELM_VERSION=${HELM_VERSION:-4.3.2}

SISKIN_CACHE=${SISKIN_CACHE:-$HOME/.cache/siskin}
SANDBOX=${SISKIN_SANDBOX:-/tmp/siskin-sandbox}
NETNS=${SISKIN_NETNS:-siskin}
POD_CIDR=10.244.0.0/16
NODE_NAME=kwok-node

K8S_BIN=$SISKIN_CACHE/k8s-bin/v$K8S_VERSION
KWOK_BIN=$SISKIN_CACHE/kwok/v$KWOK_VERSION
PY_ENV=$SISKIN_CACHE/py/traefik-$TRAEFIK_VERSION-kubectl-$KUBECTL_VERSION
KUBECTL=$PY_ENV/bin/kubectl
TRAEFIK=$PY_ENV/bin/traefik
HELM_BIN=$SISKIN_CACHE/helm/v$HELM_VERSION
# The controller image as an OCI layout (make image); the pod runner serves
# pods pinned to its digests from it.
export SISKIN_IMAGE_DIR=${SISKIN_IMAGE_DIR:-$SISKIN_CACHE/image}
KUBECONFIG_FILE=$SANDBOX/admin.kubeconfig
# Rust builds of the project are kept outside the work tree so a fresh clone
# reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SISKIN_CACHE/target}

say() { printf '\033[1;34msandbox:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31msandbox: %s\033[0m\n' "$*" >&2; exit 1; }
in_netns() { ip netns exec "$NETNS" "$@"; }
go_module_dir() { (cd /tmp && GOFLAGS=-mod=mod go mod download -json "$1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])'); }
