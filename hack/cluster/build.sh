#!/usr/bin/env bash
# Builds the local cluster's binaries (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, helm; kubelet, kube-proxy and coredns for real nodes) from the pinned Go modules into a cache outside the repo:
#   ${KUBATCH_CACHE:-~/.cache/kubatch}/<k8s-version>-<pin-hash>/bin
# A build happens only when the pins change. Prints the bin directory on stdout's last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

hash=$(cat "$here/versions.env" "$here"/{k8s,etcd,kwok,helm,coredns}/go.{mod,sum} | sha256sum | cut -c1-12)
bin="${KUBATCH_CACHE:-$HOME/.cache/kubatch}/${K8S_VERSION}-${hash}/bin"
want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm kubelet kube-proxy coredns)

have_all() { for b in "${want[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

log() { printf '[cluster-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
mkdir -p "$bin"
export GOFLAGS="-mod=readonly -trimpath" CGO_ENABLED=0
start=$SECONDS
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"

build() {  # dir output-name package [ldflags]
  local dir=$1 out=$2 pkg=$3 ldflags=${4:--s -w}
  if [ -x "$bin/$out" ]; then log "$out: cached"; return; fi
  log "$out: downloading modules and compiling $pkg (the first build takes minutes)"
  local t=$SECONDS
  (cd "$here/$dir" && go build -ldflags "$ldflags" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  log "$out: built in $((SECONDS - t))s"
}

build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION}"
build k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build k8s kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
build k8s kubelet k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
build k8s kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$k8s_ldflags"
build coredns coredns github.com/coredns/coredns "-s -w"
build helm helm helm.sh/helm/v3/cmd/helm "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
log "all binaries ready in $bin ($((SECONDS - start))s)"
echo "$bin"
