package ecr

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spacelift-io/tollgate/ecr/tokencache"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// ECR Public serves every image anonymously too, so a host without usable
// AWS credentials pulls from it without a token. Finding that out can take
// seconds (the SDK retries an unreachable IMDS), so the outcome is
// remembered for a short while, per credential source, and every helper
// process in that time answers at once. Private registries are never
// remembered as failing: each lookup tries again.
const negativeTTL = 5 * time.Minute

// negativeKinds are the failures worth remembering for ECR Public.
var negativeKinds = map[error]bool{
	ErrNoCredentials:   true,
	ErrIMDSUnreachable: true,
	ErrAccessDenied:    true,
}

// negative is a remembered ECR Public failure, stored as <scope>.none.
type negative struct {
	Version int       `json:"version"`
	Source  string    `json:"source"`
	Kind    string    `json:"kind"`
	Reason  string    `json:"reason"`
	Until   time.Time `json:"until"`
}

func negativePath(d *tokencache.Disk, s tokencache.Scope) string {
	return filepath.Join(d.Dir, s.ID()+".none")
}

// readNegative returns the remembered failure for s if it is still current.
func readNegative(d *tokencache.Disk, s tokencache.Scope, now time.Time) *Error {
	f, err := os.OpenFile(negativePath(d, s), os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil
	}
	var n negative
	if json.Unmarshal(data, &n) != nil || n.Version != tokencache.EntryVersion || n.Source != s.Source || !now.Before(n.Until) {
		return nil
	}
	kind := tokencache.KindNamed(n.Kind)
	if !negativeKinds[kind] {
		return nil
	}
	return &Error{Kind: kind, Reason: oneLine(n.Reason, 300) + " (remembered until " + n.Until.UTC().Format(time.TimeOnly) + " UTC)", Fix: fixes[kind]}
}

// rememberNegative records err for s if it is worth remembering.
func rememberNegative(d *tokencache.Disk, s tokencache.Scope, err error, now time.Time) {
	var te *Error
	if !errors.As(err, &te) {
		return
	}
	if !negativeKinds[te.Kind] {
		return
	}
	n := negative{Version: tokencache.EntryVersion, Source: s.Source, Kind: tokencache.KindName(te.Kind), Reason: te.Reason, Until: now.Add(negativeTTL)}
	if data, err := json.Marshal(n); err == nil {
		_ = securefile.WriteFile(negativePath(d, s), data)
	}
}

func forgetNegative(d *tokencache.Disk, s tokencache.Scope) {
	_ = os.Remove(negativePath(d, s))
}
