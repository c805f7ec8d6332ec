package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/spacelift-io/tollgate/allowlist"
	"github.com/spacelift-io/tollgate/config"
)

// Exit statuses of tollgate check.
const (
	checkAllowed = 0 // every reference is allowed
	checkDenied  = 1 // at least one reference is denied (or does not parse)
	checkUsage   = 2 // bad flags, no reference, or a config error
)

func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config `file` (default: $"+config.EnvConfig+", else the built-in default)")
	asJSON := fs.Bool("json", false, "print the verdicts as a JSON array")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: tollgate check [--config FILE] [--json] REF...

Says for each image reference whether the allowlist lets it be pulled: one
line per reference with "allow" or "deny", the normalised reference and the
reason. Exit status: 0 when every reference is allowed, 1 when any is denied
(a reference that does not parse is denied), 2 on a usage or config error.

flags:
`)
		fs.PrintDefaults()
	}
	refs, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return checkAllowed
		}
		return checkUsage
	}
	if len(refs) == 0 {
		fmt.Fprintln(stderr, "tollgate check: no image reference given")
		fs.Usage()
		return checkUsage
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "tollgate check: %v\n", err)
		return checkUsage
	}
	policy, err := allowlist.New(cfg.Allowlist)
	if err != nil { // config.Load validates patterns; kept for safety
		fmt.Fprintf(stderr, "tollgate check: %v\n", err)
		return checkUsage
	}

	verdicts := make([]allowlist.Verdict, len(refs))
	code := checkAllowed
	for i, ref := range refs {
		verdicts[i] = policy.Check(ref)
		if !verdicts[i].Allowed {
			code = checkDenied
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(verdicts); err != nil {
			fmt.Fprintf(stderr, "tollgate check: %v\n", err)
			return checkUsage
		}
		return code
	}
	for _, v := range verdicts {
		word := "deny"
		if v.Allowed {
			word = "allow"
		}
		fmt.Fprintf(stdout, "%-5s %s  %s\n", word, printable(v.Reference), v.Reason)
	}
	return code
}

// parseInterspersed parses flags that may come before, between or after
// the references ("tollgate check alpine --json"); everything after "--" is
// a reference.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// printable returns s as is when it is plain visible text, and quoted
// otherwise, so that a hostile reference cannot forge output lines or
// terminal escapes.
func printable(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) || r > unicode.MaxASCII }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
