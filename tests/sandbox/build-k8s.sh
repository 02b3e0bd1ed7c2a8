#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kube-scheduler from the
# k8s.io/kubernetes Go module. Release downloads are not available, and
# `go install` refuses the module because its go.mod carries replace
# directives, so the build runs inside a throwaway main module that maps every
# staging module to its published version. Output is cached by version.
set -euo pipefail
K8S=${K8S_VERSION:-1.36.3}
STAGING=0.${K8S#1.}
MINOR=$(cut -d. -f2 <<<"$K8S")
OUT=${SISKIN_CACHE:-$HOME/.cache/siskin}/k8s-bin/v$K8S
export GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=mod
if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kube-controller-manager" ] && [ -x "$OUT/kube-scheduler" ]; then
  exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
go mod init local/k8sbins >/dev/null 2>&1
GOMOD=$(go mod download -json "k8s.io/kubernetes@v$K8S" | python3 -c 'import json,sys;print(json.load(sys.stdin)["GoMod"])')
{
  echo 'replace ('
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/k8s\.io/.*#\t\1 => \1 v'"$STAGING"'#p' "$GOMOD"
  echo ')'
} >>go.mod
go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S" "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S" "k8s.io/kubernetes/cmd/kube-scheduler@v$K8S"
LD="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD+=" -X $p.gitVersion=v$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
done
mkdir -p "$OUT.tmp"
CGO_ENABLED=0 go build -trimpath -tags selinux,notest -ldflags "$LD" -o "$OUT.tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
"$OUT/kube-apiserver" --version
