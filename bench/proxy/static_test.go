package proxybench

import (
	"context"
	"net/http"
	"testing"

	"github.com/spacelift-io/tollgate/integration/harness"
)

// Each yardstick, in its own process as the benchmarks run it, serves what
// CopyImage copied: a verifying pull gets every layer
// with the upstream's digests (layers larger than the write buffer, so its
// loop turns more than once), with a Content-Length as a registry sends it,
// and an unknown blob is a 404.
func TestYardsticksServeTheImage(t *testing.T) {
	harness.RequireCommands(t, "docker-registry")
	up := harness.StartRegistry(t, harness.RegistryOptions{})
	img, err := SeedBigImage(up.Host, "bench/small", "v1", 3, writeBufferSize+12345, 7)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	local, err := CopyImage(ctx, up.URL, img.Repository, img.Tag, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, sender := range []Sender{Sendfile, WriteBuffer} {
		t.Run(sender.String(), func(t *testing.T) {
			s := startYardstick(t, local, sender)
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
			resp, err := newClient().Get(s.URL + "/v2/" + img.Repository + "/blobs/" + img.Blobs[1])
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ContentLength != writeBufferSize+12345 {
				t.Fatalf("layer: %s, Content-Length %d, want 200 and %d", resp.Status, resp.ContentLength, writeBufferSize+12345)
			}
			resp, err = newClient().Get(s.URL + "/v2/" + img.Repository + "/blobs/sha256:" + "0000000000000000000000000000000000000000000000000000000000000000")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("unknown blob: %s", resp.Status)
			}
		})
	}
}
