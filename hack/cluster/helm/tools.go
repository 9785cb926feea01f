//go:build tools

// Package tools pins the main packages that hack/cluster/build.sh compiles.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
