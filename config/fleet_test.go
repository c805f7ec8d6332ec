package config

import (
	"errors"
	"strings"
	"testing"
)

func TestFleetConfig(t *testing.T) {
	const s3 = "  shared: {driver: s3, parameters: {bucket: tollgate, region: us-east-1}}\n"
	cases := []struct {
		name, yaml, wantErr string
		advertise, lease    string
	}{
		{"full", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n    advertise: http://10.0.0.5:5001\n    secret_file: /etc/tollgate/fleet.secret\n    lease: shared\n", "", "http://10.0.0.5:5001", "shared"},
		{"defaults", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: /etc/tollgate/fleet.secret\n", "", "http://10.0.0.5:5001", "shared"},
		{"loopback fleet for tests", "proxy:\n  fleet:\n    listen: 127.0.0.2:5001\n    secret_file: /s\n    lease: redis://127.0.0.1:6379/0\n", "", "http://127.0.0.2:5001", "redis://127.0.0.1:6379/0"},
		{"ipv6", "proxy:\n  fleet:\n    listen: '[fd00::5]:5001'\n    secret_file: /s\n    lease: redis://[fd00::9]:6379/0\n", "", "http://[fd00::5]:5001", "redis://[fd00::9]:6379/0"},
		{"every interface with advertise", "proxy:\n" + s3 + "  fleet:\n    listen: :5001\n    advertise: https://host-a.internal:5001\n    secret_file: /s\n", "", "https://host-a.internal:5001", "shared"},
		{"every interface without advertise", "proxy:\n" + s3 + "  fleet:\n    listen: 0.0.0.0:5001\n    secret_file: /s\n", "set proxy.fleet.advertise", "", ""},
		{"same as proxy.listen", "proxy:\n  listen: 127.0.0.1:5000\n" + s3 + "  fleet:\n    listen: 127.0.0.1:5000\n    secret_file: /s\n", "must be separate from the client listener", "", ""},
		{"same port on every interface", "proxy:\n  listen: 127.0.0.1:5000\n" + s3 + "  fleet:\n    listen: :5000\n    advertise: http://10.0.0.5:5000\n    secret_file: /s\n", "overlaps proxy.listen", "", ""},
		{"no listen", "proxy:\n" + s3 + "  fleet:\n    secret_file: /s\n", "listen is required", "", ""},
		{"listen not host:port", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5\n    secret_file: /s\n", "not host:port", "", ""},
		{"no secret", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n", "secret_file is required", "", ""},
		{"relative secret", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: fleet.secret\n", "absolute path", "", ""},
		{"advertise not a url", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n    advertise: 10.0.0.5:5001\n    secret_file: /s\n", "not a URL", "", ""},
		{"advertise with path", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n    advertise: http://10.0.0.5:5001/v2\n    secret_file: /s\n", "scheme, host and port only", "", ""},
		{"advertise unspecified", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n    advertise: http://0.0.0.0:5001\n    secret_file: /s\n", "names no host", "", ""},
		{"shared lease without a tier", "proxy:\n  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: /s\n", "proxy.shared has no driver", "", ""},
		{"shared lease on a filesystem tier", "proxy:\n  shared: {driver: filesystem, parameters: {rootdirectory: /mnt/t}}\n  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: /s\n", "", "http://10.0.0.5:5001", "shared"},
		{"shared lease on a gcs tier", "proxy:\n  shared: {driver: gcs, parameters: {bucket: b}}\n  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: /s\n", "s3 and filesystem drivers", "", ""},
		{"redis lease on a filesystem tier", "proxy:\n  shared: {driver: filesystem, parameters: {rootdirectory: /mnt/t}}\n  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: /s\n    lease: redis://10.0.0.9:6379/0\n", "", "http://10.0.0.5:5001", "redis://10.0.0.9:6379/0"},
		{"unknown lease", "proxy:\n" + s3 + "  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: /s\n    lease: etcd://10.0.0.9\n", "use \"shared\"", "", ""},
		{"redis lease with a password", "proxy:\n  fleet:\n    listen: 10.0.0.5:5001\n    secret_file: /s\n    lease: 'redis://:hunter2@/0'\n", "not a URL", "", ""},
		{"unknown key", "proxy:\n  fleet:\n    listen: 10.0.0.5:5001\n    secret: /s\n", "unknown key \"secret\" in proxy.fleet", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), "test.yaml")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if c.Proxy.Fleet.Advertise != tc.advertise || c.Proxy.Fleet.Lease != tc.lease {
					t.Fatalf("advertise %q lease %q, want %q %q", c.Proxy.Fleet.Advertise, c.Proxy.Fleet.Lease, tc.advertise, tc.lease)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got none", tc.wantErr)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
	if c := Default(); c.Proxy.Fleet != nil {
		t.Fatal("the default config has a fleet")
	}
	f := &Fleet{Listen: "127.0.0.2:5001"}
	if !f.Overlaps("127.0.0.2:5001") || f.Overlaps("127.0.0.1:5001") || (*Fleet)(nil).Overlaps("127.0.0.1:5001") {
		t.Fatal("Overlaps")
	}
}
