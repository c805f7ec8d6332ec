package proxybench

import (
	"context"
	"testing"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// The yardstick serves what it copied: a verifying pull from it gets every
// layer with the upstream's digests, and an unknown blob is a 404.
func TestStaticServerServesTheImage(t *testing.T) {
	harness.RequireCommands(t, "docker-registry")
	up := harness.StartRegistry(t, harness.RegistryOptions{})
	img, err := SeedBigImage(up.Host, "bench/small", "v1", 3, 256<<10, 7)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := StartStaticServer(ctx, up.URL, img.Repository, img.Tag, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, ref := range []string{img.Tag, img.Digest} {
		r, err := Pull(ctx, newClient(), s.URL, img.Repository, ref, 2)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		// Pull has checked every digest; the config adds its bytes.
		if r.Blobs != len(img.Blobs) || r.Bytes <= img.LayerBytes {
			t.Fatalf("pull %s: %d bytes in %d blobs, want more than %d in %d", ref, r.Bytes, r.Blobs, img.LayerBytes, len(img.Blobs))
		}
	}
	resp, err := newClient().Get(s.URL + "/v2/" + img.Repository + "/blobs/sha256:" + "0000000000000000000000000000000000000000000000000000000000000000")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown blob: %s", resp.Status)
	}
}
