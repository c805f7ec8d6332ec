package fleet

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Errors of the peer protocol's authentication. Match them with errors.Is.
var (
	// ErrUnsigned: a peer request without the fleet's signature.
	ErrUnsigned = errors.New("fleet: request is not signed")
	// ErrBadSignature: signed with another secret, for another request,
	// or for another mode (public and private hosts are different fleets).
	ErrBadSignature = errors.New("fleet: signature does not match")
	// ErrStale: signed outside the validity window (a replay, or clocks
	// apart by more than MaxClockSkew).
	ErrStale = errors.New("fleet: signature outside its validity window")
)

// MaxClockSkew is how far a request's signing time may be from the
// server's clock, either way. Hosts of a fleet run NTP (EC2's time sync);
// the window bounds how long a captured request can be replayed.
const MaxClockSkew = 30 * time.Second

// minSecretLen is the shortest secret accepted: 16 bytes (128 bits) after
// trimming, e.g. `head -c 32 /dev/urandom | base64`.
const minSecretLen = 16

// Header names of the peer protocol.
const (
	headerAuth = "Authorization"
	headerTime = "X-Tollgate-Fleet-Time"
	headerMode = "X-Tollgate-Fleet-Mode"
	authScheme = "Tollgate-Fleet-HMAC-SHA256"
)

// Secret is the key every member of a fleet shares. It never travels: it
// keys an HMAC over each request. String and Format never show it.
type Secret struct{ key []byte }

// String implements fmt.Stringer without revealing the key.
func (Secret) String() string { return "[fleet secret]" }

// GoString implements fmt.GoStringer without revealing the key.
func (Secret) GoString() string { return "fleet.Secret{[redacted]}" }

// ReadSecret reads the fleet secret from path. The file must be a regular
// file readable by its owner only (0600 or 0400): a secret that other users
// of the host can read lets any of their processes read every blob the
// fleet holds. Surrounding white space is ignored; at least 16 bytes must
// remain. Errors name the file, never its content.
func ReadSecret(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, fmt.Errorf("fleet secret: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Secret{}, fmt.Errorf("fleet secret: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Secret{}, fmt.Errorf("fleet secret %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Secret{}, fmt.Errorf("fleet secret %s is readable by other users (mode %04o): chmod 600 it, and give every fleet member a new secret if others could read it", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4097))
	if err != nil {
		return Secret{}, fmt.Errorf("fleet secret %s: %w", path, err)
	}
	if len(b) > 4096 {
		return Secret{}, fmt.Errorf("fleet secret %s is larger than 4 KiB; is this the right file?", path)
	}
	return NewSecret(bytes.TrimSpace(b))
}

// NewSecret makes a Secret of key (at least 16 bytes). The key is copied.
func NewSecret(key []byte) (Secret, error) {
	if len(key) < minSecretLen {
		return Secret{}, fmt.Errorf("fleet secret is %d bytes; use at least %d random bytes (e.g. head -c 32 /dev/urandom | base64)", len(key), minSecretLen)
	}
	return Secret{key: bytes.Clone(key)}, nil
}

// signer signs and checks peer requests for one fleet: one secret, one
// mode. The mode is part of every signature, so a public-mode host and a
// private-mode host sharing a secret by mistake still never trade blobs.
type signer struct {
	secret Secret
	mode   string
	now    func() time.Time
}

// mac is the signature of one request: the method, the escaped path, the
// signing time and the mode, under the fleet secret.
func (s signer) mac(method, path, ts string) []byte {
	h := hmac.New(sha256.New, s.secret.key)
	for _, part := range []string{"tollgate-fleet-v1", s.mode, method, path, ts} {
		h.Write([]byte(part))
		h.Write([]byte{'\n'})
	}
	return h.Sum(nil)
}

// sign adds the signature headers to r.
func (s signer) sign(r *http.Request) {
	ts := strconv.FormatInt(s.now().Unix(), 10)
	r.Header.Set(headerTime, ts)
	r.Header.Set(headerMode, s.mode)
	r.Header.Set(headerAuth, authScheme+" "+base64.RawURLEncoding.EncodeToString(s.mac(r.Method, r.URL.EscapedPath(), ts)))
}

// verify checks r's signature: ErrUnsigned, ErrBadSignature or ErrStale.
// The errors never include the secret or the expected signature.
func (s signer) verify(r *http.Request) error {
	auth := r.Header.Get(headerAuth)
	if auth == "" {
		return ErrUnsigned
	}
	scheme, sig, ok := strings.Cut(auth, " ")
	if !ok || scheme != authScheme {
		return fmt.Errorf("%w: authorization scheme is not %s", ErrUnsigned, authScheme)
	}
	if m := r.Header.Get(headerMode); m != s.mode {
		return fmt.Errorf("%w: the peer runs in %q mode, this host in %q (public and private hosts are different fleets)", ErrBadSignature, m, s.mode)
	}
	ts := r.Header.Get(headerTime)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no valid %s", ErrBadSignature, headerTime)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(r.Method, r.URL.EscapedPath(), ts)) {
		return ErrBadSignature
	}
	if skew := s.now().Sub(time.Unix(sec, 0)); skew > MaxClockSkew || skew < -MaxClockSkew {
		return fmt.Errorf("%w: signed %s away from this host's clock (limit %s)", ErrStale, skew.Round(time.Second), MaxClockSkew)
	}
	return nil
}
