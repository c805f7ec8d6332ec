package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

// TestProxySharedTierS3: the binary as `go build ./cmd/...` makes it (no
// build tags, as in the runner image) opens an S3 shared tier on a real S3
// server (SeaweedFS). A first host pulls from upstream and uploads every
// blob to the bucket; a second host with an empty cache pulls the same
// image from the bucket, so the upstream serves each blob once in all.
func TestProxySharedTierS3(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 4*time.Minute)
	store := harness.StartSeaweedFS(t)
	bin := harness.BuildBinaries(t)
	up := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{})
	img := up.reg.SeedImage(t, "team/app", "v1", harness.ImageSpec{Layers: 3})
	shared := &harness.SharedTier{Driver: "s3", Parameters: store.SharedParameters("/tollgate")}
	cfg := harness.ProxyConfig{
		Allowlist: []string{pubHost},
		Upstreams: map[string]string{pubHost: up.rec.URL},
		Shared:    shared,
	}
	sk := harness.NewSkopeo(t)

	first := harness.StartProxy(t, bin, cfg)
	pullImage(ctx, t, sk, first.Host+"/"+pubHost+"/team/app:v1", img)

	// Uploads to the tier run in the background after each fill.
	client := store.Client()
	testwait.Eventually(t, time.Minute, func() error {
		for _, b := range img.Blobs() {
			if !bucketHasBlob(ctx, client, store.Bucket, b) {
				return fmt.Errorf("blob %s not in the bucket yet", b)
			}
		}
		return nil
	})

	second := harness.StartProxy(t, bin, cfg)
	pullImage(ctx, t, sk, second.Host+"/"+pubHost+"/team/app:v1", img)
	for _, b := range img.Blobs() {
		if n := up.reg.BlobGets(b); n != 1 {
			t.Errorf("upstream served blob %s %d times to two hosts sharing an S3 tier, want 1", b, n)
		}
	}
}

// bucketHasBlob looks for a blob where the shared tier keeps it:
// .../blobs/sha256/<2 hex>/<hex> under the driver's rootdirectory (a
// listing, so the test does not depend on how the root is spelled).
func bucketHasBlob(ctx context.Context, c *s3.Client, bucket, digest string) bool {
	hex := digest[len("sha256:"):]
	suffix := "/blobs/sha256/" + hex[:2] + "/" + hex
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return false
		}
		for _, o := range page.Contents {
			if k := aws.ToString(o.Key); len(k) >= len(suffix) && k[len(k)-len(suffix):] == suffix {
				return true
			}
		}
	}
	return false
}
