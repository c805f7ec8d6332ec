package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands is every subcommand, by name. A new subcommand is one line here
// and a run function in its own file.
var commands = map[string]command{
	"authz":     {"serve the Docker engine authorization plugin (allowlist and public mode at the daemon)", runAuthz},
	"check":     {"say whether image references may be pulled (allowlist)", runCheck},
	"doctor":    {"check what tollgate needs on this host and say what to fix", runDoctor},
	"ecr-token": {"print the ECR token for a registry host (cached; minted when needed)", runECRToken},
	"proxy":     {"run the pull-through registry proxy", runProxy},
	"refresh":   {"write fresh ECR tokens into a docker config or a Kubernetes Secret", runRefresh},
	"version":   {"print the version", runVersion},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

// parseFlags parses a subcommand's flags. done reports that the command
// must stop with code: 0 after -h (the usage was printed), 2 on a bad flag
// (the flag package said what is wrong).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tollgate COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'tollgate COMMAND -h' for a command's flags.")
}
