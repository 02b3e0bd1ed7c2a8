#!/usr/bin/env bash
# The demo: brings the sandbox up (installing what is missing), installs
# Siskin's CRDs and controller, and takes two releases of the demo app through
# a canary on a Gateway API HTTPRoute under live load at a web service's
# rates (p50 20 ms, p99 80 ms, 0.1 % 5xx), judged by the shipped Traefik
# error-rate and latency templates: a healthy one that is promoted and one at
# 1 % 5xx that is aborted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/tests/sandbox/sandbox" up
exec "$ROOT/tests/sandbox/sandbox" exec -- bash "$ROOT/demo/scenario.sh"
