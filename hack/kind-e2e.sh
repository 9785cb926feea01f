#!/usr/bin/env bash
# The integration tests against a kind cluster, for machines with a Docker engine.
# kind provides the control plane; our pinned kwok (run locally, out of cluster) provides the
# simulated nodes with the same stages as the local cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${KIND_CLUSTER_NAME:-kubatch-e2e}
bin=$(bash hack/cluster/build.sh)
command -v kind >/dev/null || GOBIN="$bin" go install sigs.k8s.io/kind@v0.30.0
kind=$(command -v kind || echo "$bin/kind")
mkdir -p .kubatch/logs
kc=$PWD/.kubatch/kind.kubeconfig
"$kind" get clusters | grep -qx "$name" || "$kind" create cluster --name "$name" --wait 120s
"$kind" get kubeconfig --name "$name" >"$kc"
KWOK_WORKDIR=$(mktemp -d) "$bin/kwok" --kubeconfig="$kc" --config=hack/cluster/kwok-stages.yaml \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake --cidr=10.0.0.0/16 --node-ip=127.0.0.1 \
  >.kubatch/logs/kind-kwok.log 2>&1 &
kwok_pid=$!
trap 'kill $kwok_pid 2>/dev/null || true' EXIT
KUBATCH_KUBECONFIG=$kc .venv/bin/pytest -n 3 --dist loadfile tests/integration "$@"
echo "kind cluster '$name' left running; delete it with: $kind delete cluster --name $name"
