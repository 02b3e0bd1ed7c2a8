#!/usr/bin/env bash
# Prints an argocd-cm patch holding the Siskin Rollout health check and
# actions, from the Lua files beside this script (laid out like Argo CD's
# resource_customizations/<group>/<kind>/, with the function every action
# shares in actions/request.lua, put before each action.lua):
#   gitops/argocd/render.sh > argocd-cm-siskin.yaml
#   kubectl -n argocd patch configmap argocd-cm --patch-file argocd-cm-siskin.yaml
set -euo pipefail
DIR=$(cd "$(dirname "$0")/siskin.io/Rollout" && pwd)
indent() { sed "s/^/$1/" "$2"; }
echo "data:"
echo "  resource.customizations.health.siskin.io_Rollout: |"
indent "    " "$DIR/health.lua"
echo "  resource.customizations.actions.siskin.io_Rollout: |"
echo "    discovery.lua: |"
indent "      " "$DIR/actions/discovery.lua"
echo "    definitions:"
for action in promote promote-full abort retry resume; do
  echo "    - name: $action"
  echo "      action.lua: |"
  # Argo CD runs each action alone: the shared function goes first.
  indent "        " "$DIR/actions/request.lua"
  indent "        " "$DIR/actions/$action/action.lua"
done
