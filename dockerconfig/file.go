package dockerconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// tokenUsername is the user name docker uses, in the credential helper
// protocol, for a secret that is an identity (OAuth refresh) token.
const tokenUsername = "<token>"

// File is a parsed docker config.json. It models auths, credHelpers and
// credsStore; every other top-level field, every auths entry it is not asked
// to change, and every unknown field inside a changed entry are kept as the
// raw JSON they were read as, so a write loses nothing.
type File struct {
	// Path is where the file was read from (for messages).
	Path string
	// CredHelpers maps a registry key to a helper name (read-only view).
	CredHelpers map[string]string
	// CredsStore is the default helper name (read-only view).
	CredsStore string

	top      map[string]json.RawMessage
	authsKey string
	auths    map[string]json.RawMessage
	dirty    bool
}

// authEntry is one auths value as docker writes it.
type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
	Email         string `json:"email,omitempty"`
}

// credentialFields are the auths entry fields that hold a credential; a new
// login replaces all of them and keeps the others.
var credentialFields = []string{"auth", "username", "password", "identitytoken", "registrytoken"}

// shape is what a config must look like for docker to load it. It is used
// only to validate (and locate errors in) the file; the data is kept raw.
type shape struct {
	Auths       map[string]authEntry `json:"auths"`
	CredHelpers map[string]string    `json:"credHelpers"`
	CredsStore  string               `json:"credsStore"`
}

// ErrCorrupt is matched (errors.Is) by every ParseError.
var ErrCorrupt = errors.New("docker config file is not valid")

// ParseError says which file does not parse and where. Its message never
// quotes the file's content.
type ParseError struct {
	Path         string
	Line, Column int
	Err          error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: docker config is not valid JSON of the expected shape (%v); the file was left untouched: fix it or move it away", e.Path, e.Line, e.Column, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) true for every ParseError.
func (e *ParseError) Is(target error) bool { return target == ErrCorrupt }

// Parse parses data, the content of the docker config at path. An empty or
// all-blank file is an empty config, as docker treats it.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Path: path, top: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(data, &f.top); err != nil {
		return nil, locate(path, data, err)
	}
	if f.top == nil { // the literal null
		f.top = map[string]json.RawMessage{}
	}
	var sh shape
	if err := json.Unmarshal(data, &sh); err != nil {
		return nil, locate(path, data, err)
	}
	f.CredHelpers = sh.CredHelpers
	f.CredsStore = sh.CredsStore
	f.authsKey = "auths"
	if _, ok := f.top["auths"]; !ok {
		for k := range f.top { // encoding/json (and so docker) matches keys case-insensitively
			if strings.EqualFold(k, "auths") {
				f.authsKey = k
				break
			}
		}
	}
	if raw, ok := f.top[f.authsKey]; ok {
		if err := json.Unmarshal(raw, &f.auths); err != nil {
			return nil, &ParseError{Path: path, Line: 1, Column: 1, Err: err}
		}
	}
	return f, nil
}

// locate turns a JSON error into a ParseError with the line and column of
// the byte where decoding stopped.
func locate(path string, data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	line, col := 1, 1
	if off > 0 {
		if off >= int64(len(data)) { // unexpected end: point at the last real byte
			off = int64(len(bytes.TrimRight(data, " \t\r\n")))
		}
		pos := max(int(off)-1, 0) // the byte that stopped the decoder
		before := data[:pos]
		line = 1 + bytes.Count(before, []byte{'\n'})
		col = pos - (bytes.LastIndexByte(before, '\n') + 1) + 1
	}
	return &ParseError{Path: path, Line: line, Column: col, Err: err}
}

// Marshal renders the file as docker does (tab-indented JSON). Fields the
// file had and tollgate does not model are kept.
func (f *File) Marshal() ([]byte, error) {
	top := make(map[string]json.RawMessage, len(f.top)+1)
	for k, v := range f.top {
		top[k] = v
	}
	if f.auths != nil || f.dirty {
		key := f.authsKey
		if key == "" {
			key = "auths"
		}
		auths := f.auths
		if auths == nil {
			auths = map[string]json.RawMessage{}
		}
		raw, err := json.Marshal(auths)
		if err != nil {
			return nil, err
		}
		top[key] = raw
	}
	out, err := json.MarshalIndent(top, "", "\t")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Changed reports whether SetAuth or RemoveAuth changed the file.
func (f *File) Changed() bool { return f.dirty }

// matchingKeys returns the auths keys that name the same registry as
// serverURL: the exact key first, then the others in sorted order.
func (f *File) matchingKeys(serverURL string) []string {
	want := NormalizeKey(serverURL)
	var exact, others []string
	for k := range f.auths {
		switch {
		case k == serverURL:
			exact = append(exact, k)
		case NormalizeKey(k) == want:
			others = append(others, k)
		}
	}
	sort.Strings(others)
	return append(exact, others...)
}

// Keys returns every auths key in sorted order.
func (f *File) Keys() []string {
	keys := make([]string, 0, len(f.auths))
	for k := range f.auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Auth returns the login stored in auths for serverURL: the entry whose key
// is serverURL exactly, else the first entry whose key names the same
// registry (see NormalizeKey) and holds a credential. An identity token is
// returned as docker's credential helpers return it: username "<token>",
// secret the token. ok is false when no entry holds a credential.
func (f *File) Auth(serverURL string) (username, secret string, ok bool, err error) {
	for _, k := range f.matchingKeys(serverURL) {
		u, s, found, err := decodeEntry(f.auths[k])
		if err != nil {
			return "", "", false, fmt.Errorf("%s: auths entry %q: %w: log in again (docker login %s) or fix that entry", f.Path, k, err, NormalizeKey(k))
		}
		if found {
			return u, s, true, nil
		}
	}
	return "", "", false, nil
}

// decodeEntry extracts the credential of one auths entry the way docker
// does: identitytoken wins, then a base64 "auth" of user:password (the
// password may itself contain ':'), then username/password.
func decodeEntry(raw json.RawMessage) (username, secret string, ok bool, err error) {
	var e authEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", "", false, fmt.Errorf("not a valid auths entry: %w", err)
	}
	if e.IdentityToken != "" {
		return tokenUsername, e.IdentityToken, true, nil
	}
	if e.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Auth))
		if err != nil {
			dec, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(e.Auth), "="))
		}
		if err != nil {
			return "", "", false, errors.New(`field "auth" is not base64 of user:password`)
		}
		user, pass, found := strings.Cut(string(dec), ":")
		if !found || user == "" {
			return "", "", false, errors.New(`field "auth" does not decode to user:password`)
		}
		return user, pass, true, nil
	}
	if e.Username != "" {
		return e.Username, e.Password, true, nil
	}
	return "", "", false, nil
}

// SetAuth writes the login for serverURL into auths, as docker login does:
// a base64 "auth" of username:secret, or, when username is "<token>", an
// "identitytoken". Any existing entries for the same registry are replaced
// by one (under the existing key when there is one, so an operator's key
// style survives); fields of that entry that are not credentials are kept.
func (f *File) SetAuth(serverURL, username, secret string) {
	keys := f.matchingKeys(serverURL)
	key := storeKey(serverURL)
	entry := map[string]json.RawMessage{}
	if len(keys) > 0 {
		key = keys[0]
		_ = json.Unmarshal(f.auths[key], &entry) // an undecodable entry is replaced whole
		if entry == nil {
			entry = map[string]json.RawMessage{}
		}
		for _, k := range keys {
			delete(f.auths, k)
		}
	}
	for k := range entry {
		for _, c := range credentialFields {
			if strings.EqualFold(k, c) {
				delete(entry, k)
			}
		}
	}
	if username == tokenUsername {
		entry["identitytoken"], _ = json.Marshal(secret)
	} else {
		entry["auth"], _ = json.Marshal(base64.StdEncoding.EncodeToString([]byte(username + ":" + secret)))
	}
	raw, _ := json.Marshal(entry) // map of raw JSON values: cannot fail
	if f.auths == nil {
		f.auths = map[string]json.RawMessage{}
	}
	f.auths[key] = raw
	f.dirty = true
}

// RemoveAuth deletes every auths entry for serverURL's registry and reports
// whether there was one.
func (f *File) RemoveAuth(serverURL string) bool {
	keys := f.matchingKeys(serverURL)
	for _, k := range keys {
		delete(f.auths, k)
	}
	if len(keys) > 0 {
		f.dirty = true
	}
	return len(keys) > 0
}

// Logins returns every auths key that holds a credential, with its user
// name. Entries that do not decode are skipped.
func (f *File) Logins() map[string]string {
	out := map[string]string{}
	for k, raw := range f.auths {
		if u, _, ok, err := decodeEntry(raw); err == nil && ok {
			out[k] = u
		}
	}
	return out
}

// HelperFor returns the helper docker would run for serverURL: the
// credHelpers entry naming the same registry (exact key first), else "".
// It does not consider credsStore.
func (f *File) HelperFor(serverURL string) (helper, key string) {
	if h, ok := f.CredHelpers[serverURL]; ok {
		return h, serverURL
	}
	want := NormalizeKey(serverURL)
	keys := make([]string, 0, len(f.CredHelpers))
	for k := range f.CredHelpers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if NormalizeKey(k) == want {
			return f.CredHelpers[k], k
		}
	}
	return "", ""
}
