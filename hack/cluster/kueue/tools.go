//go:build tools

// Package tools pins the Kueue controller manager that hack/cluster/kueue.sh compiles.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
