package proxybench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// manifestAccept is what docker sends when it pulls.
const manifestAccept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

// PullResult is what one pull moved and how long it took.
type PullResult struct {
	Bytes    int64 // blob bytes received and verified
	Blobs    int
	Duration time.Duration
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform,omitempty"`
}

type manifest struct {
	MediaType string       `json:"mediaType"`
	Config    *descriptor  `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []descriptor `json:"manifests"`
}

// Pull pulls repo:ref (tag or digest) for linux/amd64 from the registry at
// base (http://host:port, with any path prefix such as /registry.test) the
// way an engine does: the manifest (and, for an index, the platform's
// manifest), then every blob with `parallel` downloads at a time (docker's
// default is 3). Every manifest and blob is checked against its digest;
// the bytes are then discarded, so the client's disk is not measured.
func Pull(ctx context.Context, client *http.Client, base, repo, ref string, parallel int) (PullResult, error) {
	return pull(ctx, client, base, repo, ref, parallel, true)
}

// PullUnverified is Pull without hashing the blobs (manifests are still
// checked): it measures what the registry serves, without the client's
// own sha256 cost on the same cores.
func PullUnverified(ctx context.Context, client *http.Client, base, repo, ref string, parallel int) (PullResult, error) {
	return pull(ctx, client, base, repo, ref, parallel, false)
}

func pull(ctx context.Context, client *http.Client, base, repo, ref string, parallel int, verify bool) (PullResult, error) {
	start := time.Now()
	m, err := getManifest(ctx, client, base, repo, ref, "")
	if err != nil {
		return PullResult{}, err
	}
	if len(m.Manifests) > 0 {
		var pick string
		for _, d := range m.Manifests {
			if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == "amd64" {
				pick = d.Digest
				break
			}
		}
		if pick == "" {
			return PullResult{}, fmt.Errorf("%s:%s has no linux/amd64 image", repo, ref)
		}
		if m, err = getManifest(ctx, client, base, repo, pick, pick); err != nil {
			return PullResult{}, err
		}
	}
	if m.Config == nil {
		return PullResult{}, fmt.Errorf("%s:%s: manifest without config", repo, ref)
	}
	blobs := append([]descriptor{*m.Config}, m.Layers...)
	var (
		mu    sync.Mutex
		total int64
		first error
	)
	work := make(chan descriptor)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				n, err := getBlob(ctx, client, base, repo, d, verify)
				mu.Lock()
				total += n
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, d := range blobs {
		work <- d
	}
	close(work)
	wg.Wait()
	if first != nil {
		return PullResult{}, first
	}
	return PullResult{Bytes: total, Blobs: len(blobs), Duration: time.Since(start)}, nil
}

func getManifest(ctx context.Context, client *http.Client, base, repo, ref, wantDigest string) (*manifest, error) {
	m, _, _, _, err := fetchManifest(ctx, client, base, repo, ref, wantDigest)
	return m, err
}

// fetchManifest GETs repo's manifest ref as an engine asks for it, checks
// its digest (against wantDigest when given, and against the
// Docker-Content-Digest header) and returns it parsed, with its bytes, media
// type and digest.
func fetchManifest(ctx context.Context, client *http.Client, base, repo, ref, wantDigest string) (m *manifest, body []byte, mediaType, digest string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		return nil, nil, "", "", err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, "", "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, nil, "", "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, "", "", fmt.Errorf("GET manifest %s:%s: %s: %.200s", repo, ref, resp.Status, body)
	}
	sum := sha256.Sum256(body)
	digest = "sha256:" + hex.EncodeToString(sum[:])
	if wantDigest != "" && digest != wantDigest {
		return nil, nil, "", "", fmt.Errorf("manifest %s: got digest %s", wantDigest, digest)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != digest {
		return nil, nil, "", "", fmt.Errorf("manifest %s:%s: header says %s, body is %s", repo, ref, h, digest)
	}
	m = new(manifest)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, nil, "", "", fmt.Errorf("manifest %s:%s: %w", repo, ref, err)
	}
	return m, body, resp.Header.Get("Content-Type"), digest, nil
}

func getBlob(ctx context.Context, client *http.Client, base, repo string, d descriptor, verify bool) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/"+repo+"/blobs/"+d.Digest, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET blob %s: %s: %s", d.Digest, resp.Status, b)
	}
	if !verify {
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil && n != d.Size {
			err = fmt.Errorf("got %d bytes, want %d", n, d.Size)
		}
		return n, err
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, fmt.Errorf("GET blob %s: %w after %d bytes", d.Digest, err, n)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.Digest || n != d.Size {
		return n, fmt.Errorf("blob %s: got %d bytes with digest %s, want %d bytes", d.Digest, n, got, d.Size)
	}
	return n, nil
}

// HashLayers hashes data n times, `parallel` at a time, in the chunks the
// puller reads (32 KiB): the client's own work in a pull of n layers of
// len(data) bytes, without the registry or the network.
func HashLayers(data []byte, n, parallel int) {
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				h := sha256.New()
				for off := 0; off < len(data); off += 32 << 10 {
					h.Write(data[off:min(off+32<<10, len(data))])
				}
				h.Sum(nil)
			}
		}()
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
}
