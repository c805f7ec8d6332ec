package config

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateProxyEndpoints(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"loopback http", "upstreams:\n  quay.io:\n    endpoint: http://127.0.0.1:5003\n", ""},
		{"ipv6 loopback http", "upstreams:\n  quay.io:\n    endpoint: http://[::1]:5003\n", ""},
		{"https anywhere", "upstreams:\n  quay.io:\n    endpoint: https://mirror.example.com\n", ""},
		{"http non-loopback", "upstreams:\n  quay.io:\n    endpoint: http://10.0.0.5:5000\n", "plain http on a non-loopback host"},
		{"http public name", "upstreams:\n  quay.io:\n    endpoint: http://mirror.example.com\n", "plain http on a non-loopback host"},
		{"path", "upstreams:\n  quay.io:\n    endpoint: https://mirror.example.com/v2\n", "no path"},
		{"userinfo", "upstreams:\n  quay.io:\n    endpoint: https://bob:hunter2@mirror.example.com\n", "must not carry credentials"},
		{"userinfo without scheme", "upstreams:\n  quay.io:\n    endpoint: bob:hunter2@mirror.example.com\n", "is not a URL"},
		{"userinfo that does not parse", "upstreams:\n  quay.io:\n    endpoint: https://bob:hunter2%zz@mirror.example.com\n", "is not a URL"},
		{"ftp", "upstreams:\n  quay.io:\n    endpoint: ftp://mirror.example.com\n", "scheme must be https"},
		{"not canonical", "upstreams:\n  Quay.IO:\n    endpoint: https://mirror.example.com\n", "canonical host \"quay.io\""},
		{"docker hub alias", "upstreams:\n  index.docker.io:\n    endpoint: https://mirror.example.com\n", "canonical host \"docker.io\""},
		{"bad listen", "proxy:\n  listen: localhost\n", "not host:port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "test.yaml")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got none", tc.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not match ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}
