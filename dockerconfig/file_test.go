package dockerconfig

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// fixture is a config in docker's format holding every auths shape docker
// writes or reads, plus fields tollgate does not model.
var fixture = `{
	"auths": {
		"https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hub:pass:with:colons") + `"},
		"HTTPS://Reg.Example.com:5000/v2/": {"username": "plainuser", "password": "plainpass"},
		"token.example.com": {"auth": "` + b64("ignored:ignored") + `", "identitytoken": "refresh-token-1"},
		"onlytoken.example.com": {"identitytoken": "refresh-token-2"},
		"empty.example.com": {},
		"unpadded.example.com": {"auth": "` + strings.TrimRight(b64("u:pw"), "=") + `"},
		"mail.example.com": {"auth": "` + b64("mailuser:mailpass") + `", "email": "ops@example.com", "x-custom": {"k": [1,2]}}
	},
	"credHelpers": {"helper.example.com": "fake"},
	"credsStore": "tollgate",
	"psFormat": "table {{.ID}}",
	"proxies": {"default": {"httpProxy": "http://127.0.0.1:3128"}},
	"experimental": "enabled"
}`

func TestAuthShapes(t *testing.T) {
	f, err := Parse("config.json", []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ server, user, secret string }{
		{"https://index.docker.io/v1/", "hubuser", "hub:pass:with:colons"},
		{"docker.io", "hubuser", "hub:pass:with:colons"},
		{"registry-1.docker.io", "hubuser", "hub:pass:with:colons"},
		{"index.docker.io", "hubuser", "hub:pass:with:colons"},
		{"reg.example.com:5000", "plainuser", "plainpass"},
		{"https://REG.example.com:5000", "plainuser", "plainpass"},
		{"token.example.com", "<token>", "refresh-token-1"},
		{"onlytoken.example.com", "<token>", "refresh-token-2"},
		{"unpadded.example.com", "u", "pw"},
		{"mail.example.com", "mailuser", "mailpass"},
	}
	for _, c := range cases {
		u, s, ok, err := f.Auth(c.server)
		if err != nil || !ok || u != c.user || s != c.secret {
			t.Errorf("Auth(%q) = %q, %q, %v, %v; want %q, %q", c.server, u, s, ok, err, c.user, c.secret)
		}
	}
	for _, miss := range []string{"empty.example.com", "reg.example.com", "reg.example.com:5001", "other.example.com"} {
		if _, _, ok, err := f.Auth(miss); ok || err != nil {
			t.Errorf("Auth(%q) found a login (err %v)", miss, err)
		}
	}
	if h, _ := f.HelperFor("https://Helper.Example.com/v2/"); h != "fake" {
		t.Errorf("HelperFor = %q, want fake", h)
	}
	if f.CredsStore != "tollgate" {
		t.Errorf("CredsStore = %q", f.CredsStore)
	}
	logins := f.Logins()
	if logins["https://index.docker.io/v1/"] != "hubuser" || logins["onlytoken.example.com"] != "<token>" {
		t.Errorf("Logins = %v", logins)
	}
	if _, ok := logins["empty.example.com"]; ok {
		t.Error("an entry with no credential is not a login")
	}
}

func TestBadAuthEntryIsClearAndSecretFree(t *testing.T) {
	for _, auth := range []string{"!!notbase64!!", b64("nocolon-supersecret")} {
		f, err := Parse("config.json", []byte(`{"auths":{"r.example.com":{"auth":"`+auth+`"}}}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _, _, err = f.Auth("r.example.com")
		if err == nil || !strings.Contains(err.Error(), `"r.example.com"`) {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(err.Error(), "docker login r.example.com") {
			t.Errorf("error %q does not say how to fix the entry", err)
		}
		if strings.Contains(err.Error(), "supersecret") || strings.Contains(err.Error(), auth) {
			t.Fatalf("error leaks the credential: %v", err)
		}
	}
}

func TestParseErrorsLocate(t *testing.T) {
	cases := []struct {
		data      string
		line, col int
	}{
		{"{\n\t\"auths\": {\n\t\t\"a\": {\"auth\": \"x\"},,\n\t}\n}", 3, 22}, // the second comma
		{"{\n  \"auths\": [1]\n}", 2, 12},                                    // the array
		{"{\n  \"credsStore\": 5\n}", 2, 17},                                 // the number
		{"{\"auths\": {", 1, 11},
		{"[]", 1, 1},
	}
	for _, c := range cases {
		_, err := Parse("/x/config.json", []byte(c.data))
		var pe *ParseError
		if !errors.As(err, &pe) || !errors.Is(err, ErrCorrupt) {
			t.Errorf("Parse(%q) err = %v, want ParseError", c.data, err)
			continue
		}
		if pe.Line != c.line || pe.Column != c.col {
			t.Errorf("Parse(%q) at %d:%d, want %d:%d (%v)", c.data, pe.Line, pe.Column, c.line, c.col, err)
		}
		if !strings.HasPrefix(err.Error(), "/x/config.json:") {
			t.Errorf("error does not name the file: %v", err)
		}
	}
	for _, empty := range []string{"", "  \n", "{}", "null", `{"auths": null}`} {
		f, err := Parse("c", []byte(empty))
		if err != nil {
			t.Errorf("Parse(%q): %v", empty, err)
			continue
		}
		if _, _, ok, _ := f.Auth("docker.io"); ok {
			t.Errorf("Parse(%q) found a login", empty)
		}
	}
}

func decodeMap(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, data)
	}
	return m
}

func TestSetAuthPreservesEverythingElse(t *testing.T) {
	f, err := Parse("c", []byte(fixture))
	if err != nil {
		t.Fatal(err)
	}
	f.SetAuth("new.example.com:5000", "newuser", "new:secret")
	f.SetAuth("mail.example.com", "mailuser2", "mailpass2") // keeps email and x-custom
	f.SetAuth("docker.io", "<token>", "hub-identity")       // replaces under the existing key
	out, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	before, after := decodeMap(t, []byte(fixture)), decodeMap(t, out)
	for _, k := range []string{"credHelpers", "credsStore", "psFormat", "proxies", "experimental"} {
		if !reflect.DeepEqual(before[k], after[k]) {
			t.Errorf("field %s changed: %v -> %v", k, before[k], after[k])
		}
	}
	ba, aa := before["auths"].(map[string]any), after["auths"].(map[string]any)
	for _, k := range []string{"HTTPS://Reg.Example.com:5000/v2/", "token.example.com", "onlytoken.example.com", "empty.example.com", "unpadded.example.com"} {
		if !reflect.DeepEqual(ba[k], aa[k]) {
			t.Errorf("untouched entry %s changed: %v -> %v", k, ba[k], aa[k])
		}
	}
	if got := aa["new.example.com:5000"]; !reflect.DeepEqual(got, map[string]any{"auth": b64("newuser:new:secret")}) {
		t.Errorf("new entry = %v", got)
	}
	mail := aa["mail.example.com"].(map[string]any)
	if mail["auth"] != b64("mailuser2:mailpass2") || mail["email"] != "ops@example.com" || !reflect.DeepEqual(mail["x-custom"], ba["mail.example.com"].(map[string]any)["x-custom"]) {
		t.Errorf("replaced entry lost its other fields: %v", mail)
	}
	hub := aa["https://index.docker.io/v1/"].(map[string]any)
	if !reflect.DeepEqual(hub, map[string]any{"identitytoken": "hub-identity"}) {
		t.Errorf("hub entry = %v", hub)
	}
	if len(aa) != len(ba)+1 {
		t.Errorf("auths has %d entries, want %d", len(aa), len(ba)+1)
	}
	// Round trip: what was written reads back.
	g, err := Parse("c", out)
	if err != nil {
		t.Fatal(err)
	}
	if u, s, ok, _ := g.Auth("registry-1.docker.io"); !ok || u != "<token>" || s != "hub-identity" {
		t.Errorf("hub read back %q %q %v", u, s, ok)
	}
	if u, s, ok, _ := g.Auth("NEW.example.com:5000"); !ok || u != "newuser" || s != "new:secret" {
		t.Errorf("new read back %q %q %v", u, s, ok)
	}
}

func TestSetAuthReplacesAliasesAndRemoveAuth(t *testing.T) {
	f, err := Parse("c", []byte(`{"auths":{"docker.io":{"auth":"`+b64("a:b")+`"},"https://index.docker.io/v1/":{"auth":"`+b64("c:d")+`"},"registry-1.docker.io":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	f.SetAuth("index.docker.io", "e", "f")
	if keys := f.Keys(); len(keys) != 1 {
		t.Fatalf("aliases not merged: %v", keys)
	}
	for _, alias := range []string{"docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"} {
		if u, s, ok, _ := f.Auth(alias); !ok || u != "e" || s != "f" {
			t.Errorf("Auth(%s) = %q %q %v", alias, u, s, ok)
		}
	}
	if !f.RemoveAuth("https://registry-1.docker.io/v2/") {
		t.Fatal("RemoveAuth found nothing")
	}
	if len(f.Keys()) != 0 || f.RemoveAuth("docker.io") {
		t.Fatalf("left: %v", f.Keys())
	}
	// A fresh file gets docker's key for Docker Hub and a plain host for the rest.
	g, _ := Parse("c", nil)
	g.SetAuth("registry-1.docker.io", "u", "p")
	g.SetAuth("https://Ghcr.io/v2/", "u", "p")
	if got := g.Keys(); !reflect.DeepEqual(got, []string{"ghcr.io", "https://index.docker.io/v1/"}) {
		t.Errorf("keys = %v", got)
	}
}
