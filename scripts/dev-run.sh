#!/usr/bin/env bash
# Runs the operator against the current kubeconfig's cluster when one answers,
# otherwise starts the embedded kubetrace-devcluster and runs against that.
set -euo pipefail
bin="$1"
state=".devcluster"

reachable() {
  local cfg="${KUBECONFIG:-$HOME/.kube/config}"
  local any=""
  IFS=: read -ra files <<< "$cfg"
  for f in "${files[@]}"; do [ -n "$f" ] && [ -f "$f" ] && any=1; done
  [ -n "$any" ] || return 1
  if command -v kubectl >/dev/null 2>&1; then
    kubectl --request-timeout=5s get --raw /version >/dev/null 2>&1
  fi
}

if reachable; then
  echo "make run: using the current kubeconfig's cluster" >&2
  exec "$bin/kubetrace-operator" run
fi

echo "make run: no reachable cluster in the kubeconfig; starting kubetrace-devcluster (state in $state/)" >&2
rm -f "$state/port"
scripts/devcluster.sh "$bin" "$state" &
dev=$!
trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null || true' EXIT
trap 'exit 0' INT TERM
for _ in $(seq 300); do
  [ -f "$state/port" ] && break
  kill -0 $dev 2>/dev/null || { echo "make run: kubetrace-devcluster exited" >&2; exit 1; }
  sleep 0.1
done
[ -f "$state/port" ] || { echo "make run: kubetrace-devcluster did not start within 30 s" >&2; exit 1; }
export KUBECONFIG="$state/kubeconfig"
echo "make run: devcluster at $(sed 's|/kubetrace-api$||' "$state/api_url")" >&2
# Install as a user would: generate the manifest against the devcluster's own Kubetrace API and
# Vultr emulators, apply it server-side.
"$bin/kubetrace-operator" manifest --cluster-id devcluster --api-url "$(cat "$state/api_url")" \
  --operator-token-file "$state/operator_token" --vultr-api-key-file "$state/vultr_api_key" \
  --registry-id devcluster-registry --vultr-api-url "$(cat "$state/vultr_api_url")" \
  --ca-file "$state/ca.crt" --output "$state/kubetrace-operator.yaml"
kubectl apply --server-side -f "$state/kubetrace-operator.yaml" >&2

if [ "$(id -u)" != 0 ]; then
  # No node without root: the Deployment cannot run, so run the operator out of cluster instead.
  echo "make run: not root, so the devcluster has no node; running the operator here, out of cluster" >&2
  exec_env=(API_URL="$(cat "$state/api_url")" CLUSTER_ID=devcluster POD_NAMESPACE=kubetrace-system)
  env "${exec_env[@]}" "$bin/kubetrace-operator" run --ca-file "$state/ca.crt" --vultr-api-url "$(cat "$state/vultr_api_url")"
  exit $?
fi

kubectl rollout status deployment/kubetrace-operator -n kubetrace-system --timeout=180s >&2
cat >&2 <<MSG

make run: the operator runs as the Deployment kubetrace-system/kubetrace-operator in the devcluster.
Look at it (in another terminal):
  . $PWD/$state/install.env     # KUBECONFIG, PATH (the kubetrace-operator just built), CA_FILE, REGISTRY …
  kubectl get pods -n kubetrace-system -o wide
  kubectl logs -n kubetrace-system deployment/kubetrace-operator -f
  kubectl describe deployment kubetrace-operator -n kubetrace-system
  kubetrace-operator status
  kubetrace-operator doctor --ca-file "\$CA_FILE" --registry "\$REGISTRY" --registry-ca-file "\$REGISTRY_CA_FILE"
Ctrl-C stops the devcluster and its Pods.
MSG
wait $dev
