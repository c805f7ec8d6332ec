package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched (errors.Is) by every error about a config file's
// content, as opposed to an error reading it.
var ErrInvalid = errors.New("invalid config")

// Problem is one thing wrong with a config file. Line is 1-based; 0 when
// the problem has no place in the file (a value that came from a default).
type Problem struct {
	Line int
	Msg  string
}

// Error lists every problem found in one config file. Its message has one
// line per problem, "file:line: message", the form editors jump to.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.File, p.Msg)
		}
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// FieldError is a problem with one value, located by its key path: mapping
// keys, and decimal indexes for list items, e.g. {"allowlist", "2"} or
// {"upstreams", "ghcr.io", "endpoint"}. Parse turns it into a Problem with
// the line of that value.
type FieldError struct {
	Path []string
	Msg  string
}

func (f FieldError) Error() string { return strings.Join(f.Path, ".") + ": " + f.Msg }

// fieldErr builds a FieldError.
func fieldErr(msg string, path ...string) FieldError {
	return FieldError{Path: path, Msg: msg}
}
