#!/usr/bin/env bash
# pki.sh DIR KUBECTL — a throwaway CA, the apiserver's serving certificate (with
# the SANs and CA:FALSE leaf rustls insists on), an admin client certificate in
# system:masters, the service-account key pair, and an admin kubeconfig.
set -euo pipefail
D=$1 KUBECTL=$2 P=$1/pki
if [ -f "$D/admin.kubeconfig" ] && [ -f "$P/sa.key" ]; then exit 0; fi
mkdir -p "$P"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" -days 3650 -subj "/CN=siskin-sandbox-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
openssl req -newkey rsa:2048 -nodes -keyout "$P/apiserver.key" -out "$P/apiserver.csr" -subj "/CN=kube-apiserver"
openssl x509 -req -in "$P/apiserver.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 -out "$P/apiserver.crt" \
  -extfile <(printf "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment")
openssl req -newkey rsa:2048 -nodes -keyout "$P/admin.key" -out "$P/admin.csr" -subj "/O=system:masters/CN=admin"
openssl x509 -req -in "$P/admin.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 -out "$P/admin.crt" \
  -extfile <(printf "extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment")
openssl genrsa -out "$P/sa.key" 2048 && openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub"
K=$D/admin.kubeconfig.tmp
"$KUBECTL" config --kubeconfig="$K" set-cluster sandbox --server=https://127.0.0.1:6443 --certificate-authority="$P/ca.crt" --embed-certs=true
"$KUBECTL" config --kubeconfig="$K" set-credentials admin --client-certificate="$P/admin.crt" --client-key="$P/admin.key" --embed-certs=true
"$KUBECTL" config --kubeconfig="$K" set-context sandbox --cluster=sandbox --user=admin
"$KUBECTL" config --kubeconfig="$K" use-context sandbox
mv "$K" "$D/admin.kubeconfig"
