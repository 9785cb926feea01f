#!/usr/bin/env bash
# Prints the directory holding Karpenter's CRDs (pkg/apis/crds/) for the pinned KARPENTER_VERSION,
# from the Go module sigs.k8s.io/karpenter (through the Go module proxy):
#   kubectl apply --server-side -f "$(hack/cluster/karpenter.sh)"
# `go mod download -json` names the unpacked module in its `Dir` field. When the local Go is older
# than the module's `go` line (GOTOOLCHAIN=local), Go still downloads the module zip but does not
# unpack it; the CRDs are then extracted from that zip into .kubatch/karpenter/<version>/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
module="sigs.k8s.io/karpenter@${KARPENTER_VERSION}"

info=$(cd "$here" && GOFLAGS=-mod=mod go mod download -json "$module" || true)
field() { python3 -c 'import json,sys; print(json.loads(sys.stdin.read() or "{}").get(sys.argv[1], ""))' "$1" <<<"$info"; }
dir=$(field Dir)
if [[ -n "$dir" && -d "$dir/pkg/apis/crds" ]]; then
  echo "$dir/pkg/apis/crds"
  exit 0
fi
zip=$(field Zip)
if [[ -z "$zip" || ! -f "$zip" ]]; then
  echo "karpenter.sh: cannot download $module: $(field Error)" >&2
  exit 1
fi
out="$repo/.kubatch/karpenter/${KARPENTER_VERSION}/crds"
if [[ ! -f "$out/karpenter.sh_nodepools.yaml" ]]; then
  mkdir -p "$out"
  python3 - "$zip" "$module" "$out" <<'PY'
import os, sys, zipfile
zip_path, module, out = sys.argv[1:]
prefix = f"{module}/pkg/apis/crds/"
with zipfile.ZipFile(zip_path) as z:
    for name in z.namelist():
        rest = name[len(prefix):] if name.startswith(prefix) else ""
        if rest.endswith(".yaml") and "/" not in rest:
            with open(os.path.join(out, rest), "wb") as f:
                f.write(z.read(name))
PY
fi
echo "$out"
