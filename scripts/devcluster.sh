#!/usr/bin/env bash
# `make devcluster`: the embedded local Kubernetes API (state in .devcluster/). As root it also
# runs a node (kubelet, controllers, registry emulator), so the install manifest's Deployment
# really runs: the operator's image reference maps to the operator just built.
set -euo pipefail
bin="$(cd "$1" && pwd)"
state="${2:-.devcluster}"
args=(--state-dir "$state")
if [ "$(id -u)" = 0 ]; then
  version="$("$bin/kubetrace-operator" --version)"
  args+=(--node --image "blr.vultrcr.com/kubetrace/kubetrace-operator:$version=$bin/kubetrace-operator,user=65532:65532")
else
  echo "make devcluster: not root, so no node: Deployments are stored but no Pod runs (run as root for --node)" >&2
fi
exec "$bin/kubetrace-devcluster" "${args[@]}"
