package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spacelift-io/tollgate/internal/buildinfo"
)

func init() {
	commands["version"] = command{"print the version", runVersion}
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "tollgate %s\n", buildinfo.String())
	return 0
}
