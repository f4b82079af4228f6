//go:build tools

// Package tools pins the Pulumi CLI as a dependency of this module so that
// `go mod tidy` keeps it; tools/build-pulumi.sh builds it with
// `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi`.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
