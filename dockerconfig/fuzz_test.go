package dockerconfig

import (
	"reflect"
	"testing"
)

// FuzzParse: any input either fails with a located ParseError or parses into
// a file that survives a write and a re-read with the same logins.
func FuzzParse(f *testing.F) {
	f.Add([]byte(fixture))
	f.Add([]byte(`{"auths":{"a":{"auth":"YTpi"}},"credsStore":"x"}`))
	f.Add([]byte(`{"auths":{"a":{"identitytoken":"t"}}}`))
	f.Add([]byte("{\n\"auths\": {,}}"))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("c", data)
		if err != nil {
			pe, ok := err.(*ParseError)
			if !ok || pe.Line < 1 || pe.Column < 1 {
				t.Fatalf("error %v (%T) is not a located ParseError", err, err)
			}
			return
		}
		file.SetAuth("fuzz.example.com", "u", "p:q")
		out, err := file.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse("c", out)
		if err != nil {
			t.Fatalf("re-parse of written file: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(file.Logins(), again.Logins()) {
			t.Fatalf("logins changed across a write: %v -> %v", file.Logins(), again.Logins())
		}
		if u, p, ok, err := again.Auth("FUZZ.example.com"); err != nil || !ok || u != "u" || p != "p:q" {
			t.Fatalf("stored login reads back as %q %q %v %v", u, p, ok, err)
		}
	})
}

// FuzzNormalizeKey: normalising is idempotent, and a normalised key matches
// the key it came from.
func FuzzNormalizeKey(f *testing.F) {
	for _, s := range []string{"https://index.docker.io/v1/", "Reg.Example.com:443", "[::1]:5000", "http://a/b?c#d", "u@h", "docker.io:5000", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		n := NormalizeKey(key)
		if NormalizeKey(n) != n {
			t.Fatalf("NormalizeKey(%q) = %q, but NormalizeKey(%q) = %q", key, n, n, NormalizeKey(n))
		}
	})
}
