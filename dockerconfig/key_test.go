package dockerconfig

import "testing"

func TestNormalizeKey(t *testing.T) {
	cases := map[string]string{
		"https://index.docker.io/v1/":      "docker.io",
		"docker.io":                        "docker.io",
		"registry-1.docker.io":             "docker.io",
		"index.docker.io":                  "docker.io",
		"https://registry-1.docker.io/v2/": "docker.io",
		"Index.Docker.IO":                  "docker.io",
		"docker.io:443":                    "docker.io",
		"docker.io:5000":                   "docker.io:5000",
		"reg.example.com":                  "reg.example.com",
		"REG.Example.com":                  "reg.example.com",
		"https://reg.example.com/v2/":      "reg.example.com",
		"http://reg.example.com:5000/x/y":  "reg.example.com:5000",
		"reg.example.com:5000/some/repo":   "reg.example.com:5000",
		"reg.example.com:443":              "reg.example.com",
		"reg.example.com.":                 "reg.example.com",
		"127.0.0.1:5000":                   "127.0.0.1:5000",
		"[::1]:5000":                       "[::1]:5000",
		"[::1]":                            "[::1]",
		"https://user@reg.example.com/":    "reg.example.com",
		" reg.example.com ":                "reg.example.com",
		"ghcr.io":                          "ghcr.io",
		"registry.hub.docker.com":          "registry.hub.docker.com",
	}
	for in, want := range cases {
		if got := NormalizeKey(in); got != want {
			t.Errorf("NormalizeKey(%q) = %q, want %q", in, got, want)
		}
	}
	if NormalizeKey("reg.example.com:5000") == NormalizeKey("reg.example.com:5001") {
		t.Error("different ports must be different registries")
	}
}

func TestStoreKey(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io":                   "https://index.docker.io/v1/",
		"https://index.docker.io/v1/": "https://index.docker.io/v1/",
		"Reg.Example.com:5000":        "reg.example.com:5000",
		"https://ghcr.io/v2/":         "ghcr.io",
	} {
		if got := storeKey(in); got != want {
			t.Errorf("storeKey(%q) = %q, want %q", in, got, want)
		}
	}
}
