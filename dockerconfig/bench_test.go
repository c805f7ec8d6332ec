package dockerconfig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchStore is a config dir with n logins, as a large operator config.
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "logins")
	if err := os.Mkdir(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	var sb strings.Builder
	sb.WriteString(`{"auths":{`)
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `"https://r%03d.example.com/v2/":{"auth":%q}`, i, b64(fmt.Sprintf("user%d:secret%d", i, i)))
	}
	sb.WriteString(`},"psFormat":"x"}`)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	return &Store{Dir: dir, Self: "tollgate"}
}

// BenchmarkGet is one helper `get` served from the config dir: read, parse,
// match (no delegated helper).
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{10, 200} {
		b.Run(fmt.Sprintf("logins=%d", n), func(b *testing.B) {
			s := benchStore(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := s.Get(ctx, fmt.Sprintf("R%03d.example.com", n-1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPut is one `store`: lock, re-read, modify, fsync'd atomic write.
func BenchmarkPut(b *testing.B) {
	s := benchStore(b, 200)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Put(ctx, "new.example.com", "u", "p"); err != nil {
			b.Fatal(err)
		}
	}
}
