package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/spacelift-io/tollgate/internal/buildinfo"
)

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tollgate version\n\nPrints the version tollgate was built as.")
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tollgate version: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	fmt.Fprintf(stdout, "tollgate %s\n", buildinfo.String())
	return 0
}
