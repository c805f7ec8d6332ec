package tokencache

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/spacelift-io/tollgate/ecr/ecrhost"
	"github.com/spacelift-io/tollgate/internal/credsource"
)

var allKinds = []error{ErrNoCredentials, ErrIMDSUnreachable, ErrAccessDenied, ErrThrottled, ErrUnavailable, ErrConfig, ecrhost.ErrNotECR}

func TestKindNamesRoundTrip(t *testing.T) {
	seen := map[string]bool{}
	for _, kind := range allKinds {
		name := KindName(fmt.Errorf("for some host: %w", kind))
		if name == "other" || seen[name] {
			t.Fatalf("%v: name %q is missing or taken twice", kind, name)
		}
		seen[name] = true
		if got := KindNamed(name); got != kind {
			t.Errorf("KindNamed(%q) = %v, want %v", name, got, kind)
		}
	}
	if KindName(errors.New("disk on fire")) != "other" || KindNamed("other") != nil || KindNamed("from-a-newer-tollgate") != nil {
		t.Error("an error of no kind must be \"other\", and \"other\" no kind")
	}
}

func TestTemporaryKinds(t *testing.T) {
	want := map[error]bool{ErrThrottled: true, ErrUnavailable: true, ErrIMDSUnreachable: true}
	for _, kind := range allKinds {
		if TemporaryKind(kind) != want[kind] {
			t.Errorf("TemporaryKind(%v) = %v, want %v", kind, !want[kind], want[kind])
		}
	}
}

// TestMintErrorKeepsTheContract: the error docker-credential-tollgate makes
// of the minting process's Answer matches the same kind with errors.Is and
// says Temporary as the engine's own error would, after the JSON trip.
func TestMintErrorKeepsTheContract(t *testing.T) {
	for _, kind := range allKinds {
		data, err := json.Marshal(Answer{Error: kind.Error() + " for a registry: do this", Kind: KindName(kind)})
		if err != nil {
			t.Fatal(err)
		}
		var a Answer
		if err := json.Unmarshal(data, &a); err != nil {
			t.Fatal(err)
		}
		got := fmt.Errorf("get: %w", &MintError{Kind: a.Kind, Message: a.Error})
		for _, other := range allKinds {
			if errors.Is(got, other) != (other == kind) {
				t.Errorf("MintError of kind %q: errors.Is(%v) = %v", a.Kind, other, !(other == kind))
			}
		}
		if credsource.IsTemporary(got) != TemporaryKind(kind) {
			t.Errorf("MintError of kind %q: temporary %v, want %v", a.Kind, !TemporaryKind(kind), TemporaryKind(kind))
		}
		if credsource.IsNotFound(got) {
			t.Errorf("MintError of kind %q reads as not found", a.Kind)
		}
		var me *MintError
		if !errors.As(got, &me) || got.Error() != "get: "+a.Error {
			t.Errorf("message changed: %q", got)
		}
	}
	unknown := &MintError{Kind: "other", Message: "something else"}
	for _, kind := range allKinds {
		if errors.Is(unknown, kind) {
			t.Errorf("a MintError of no kind matches %v", kind)
		}
	}
	if unknown.Temporary() {
		t.Error("a MintError of no kind says temporary")
	}
}
