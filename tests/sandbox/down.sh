#!/usr/bin/env bash
# Stops every process in the sandbox's network namespace (the components and
# every demo-app process the pod runner started), then removes the namespace.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/env.sh"
if ! ip netns list 2>/dev/null | grep -qw "$NETNS"; then
  rm -f "$SANDBOX/ready"; say "not running"; exit 0
fi
pids=$(ip netns pids "$NETNS" 2>/dev/null)
[ -n "$pids" ] && kill $pids 2>/dev/null
for _ in $(seq 1 50); do
  pids=$(ip netns pids "$NETNS" 2>/dev/null)
  [ -z "$pids" ] && break
  sleep 0.2
done
if [ -n "$pids" ]; then kill -9 $pids 2>/dev/null; sleep 0.5; fi
left=$(ip netns pids "$NETNS" 2>/dev/null | tr '\n' ' ')
[ -n "$left" ] && die "processes left behind in netns $NETNS: $left"
ip netns del "$NETNS"
rm -f "$SANDBOX/ready"
say "down"
