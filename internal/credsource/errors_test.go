package credsource

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/docker/docker-credential-helpers/credentials"
)

func TestNotFound(t *testing.T) {
	wrapped := fmt.Errorf("ghcr.io: %w", ErrNotFound)
	for name, c := range map[string]struct {
		err  error
		want bool
	}{
		"ours":                                {ErrNotFound, true},
		"ours, wrapped":                       {wrapped, true},
		"ours, joined":                        {errors.Join(errors.New("other"), wrapped), true},
		"docker-credential-helpers'":          {credentials.NewErrCredentialsNotFound(), true},
		"docker-credential-helpers', wrapped": {fmt.Errorf("helper: %w", credentials.NewErrCredentialsNotFound()), true},
		"nil":                                 {nil, false},
		"a real failure":                      {errors.New("access denied"), false},
		"the same text, no marker":            {errors.New(ErrNotFound.Error()), false},
		"a missing file":                      {fs.ErrNotExist, false},
	} {
		if got := IsNotFound(c.err); got != c.want {
			t.Errorf("%s: IsNotFound(%v) = %v, want %v", name, c.err, got, c.want)
		}
	}
	if !errors.Is(wrapped, ErrNotFound) {
		t.Error("errors.Is does not see a wrapped ErrNotFound")
	}
	var m interface{ NotFound() }
	if !errors.As(wrapped, &m) {
		t.Error("ErrNotFound has no NotFound() marker")
	}
}

// temporaryErr says whether it will pass, as ecr.Error does.
type temporaryErr bool

func (t temporaryErr) Error() string   { return fmt.Sprintf("temporary=%v", bool(t)) }
func (t temporaryErr) Temporary() bool { return bool(t) }

func TestTemporary(t *testing.T) {
	for name, c := range map[string]struct {
		err  error
		want bool
	}{
		"temporary":                  {temporaryErr(true), true},
		"temporary, wrapped":         {fmt.Errorf("mint: %w", temporaryErr(true)), true},
		"not temporary":              {temporaryErr(false), false},
		"not temporary, wrapped":     {fmt.Errorf("%w", temporaryErr(false)), false},
		"no Temporary method":        {errors.New("boom"), false},
		"nil":                        {nil, false},
		"not found is not temporary": {ErrNotFound, false},
	} {
		if got := IsTemporary(c.err); got != c.want {
			t.Errorf("%s: IsTemporary(%v) = %v, want %v", name, c.err, got, c.want)
		}
	}
}
