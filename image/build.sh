#!/usr/bin/env bash
# make image: the controller image as an OCI image layout, with no container
# engine. Builds the static binary, then writes the layout (image/oci-layout.py)
# and prints the manifest digest, the name to pin:
#   siskin/controller@sha256:...
# The layout goes to $SISKIN_IMAGE_DIR (default ~/.cache/siskin/image); copy it
# to a registry with e.g. `skopeo copy oci:DIR:TAG docker://REGISTRY/siskin/controller:TAG`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SISKIN_CACHE=${SISKIN_CACHE:-$HOME/.cache/siskin}
OUT=${SISKIN_IMAGE_DIR:-$SISKIN_CACHE/image}
TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SISKIN_CACHE/target}
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# glibc linked statically (crt-static): the image then needs no libc, and
# the binary runs on any x86_64 Linux. --target keeps build scripts and proc
# macros dynamic, which crt-static would break.
(cd "$ROOT" && RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --locked --target "$TARGET" --bin siskin >&2)
BIN=$CARGO_TARGET_DIR/$TARGET/release/siskin
# A static binary asks for no program interpreter (ld.so).
if grep -q 'ld-linux' <(head -c 4096 "$BIN" | tr -c '[:print:]' '\n'); then
  echo "image: $BIN is linked dynamically" >&2; exit 1
fi
[ -f "$CA" ] || { echo "image: no CA bundle at $CA (apt-get install ca-certificates)" >&2; exit 1; }

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
# The commit's time as every file's time: the same source gives the same digest.
EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)}
python3 "$ROOT/image/oci-layout.py" --out "$OUT" --binary "$BIN" --ca-bundle "$CA" \
  --tag "$VERSION" --epoch "$EPOCH" --revision "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
