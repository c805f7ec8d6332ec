package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func TestManifests(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	m := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `"}`)
	d := digest.FromBytes(m)

	if err := c.PutManifest(host, repo, d, ociManifest, append(m, ' ')); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("wrong content: %v, want ErrDigestMismatch", err)
	}
	if c.Exists(d) {
		t.Fatal("mismatching manifest stored")
	}
	big := bytes.Repeat([]byte("x"), MaxManifestSize+1)
	if err := c.PutManifest(host, repo, digest.FromBytes(big), ociManifest, big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v, want ErrTooLarge", err)
	}
	if err := c.PutManifest(host, repo, d, ociManifest, m); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetManifest(host, repo, d)
	if err != nil || !bytes.Equal(got.Data, m) || got.MediaType != ociManifest || got.Digest != d {
		t.Fatalf("GetManifest = %+v, %v", got, err)
	}
	// Scoped like blobs, and kept apart from blobs.
	if _, err := c.GetManifest(host, "other/app", d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other repository: %v", err)
	}
	if c.Has(host, repo, d) {
		t.Fatal("a manifest is reported as a blob")
	}
	const index = "application/vnd.oci.image.index.v1+json"
	if err := c.LinkManifest(host, "other/app", d, index); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetManifest(host, "other/app", d); err != nil || got.MediaType != index {
		t.Fatalf("linked manifest: %+v %v", got, err)
	}
	// sha512 works too.
	d512 := digest.SHA512.FromBytes(m)
	if err := c.PutManifest(host, repo, d512, ociManifest, m); err != nil {
		t.Fatal(err)
	}

	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2 := openCache(t, dir, Options{})
	for _, tc := range []struct {
		repo string
		d    digest.Digest
		mt   string
	}{{repo, d, ociManifest}, {"other/app", d, index}, {repo, d512, ociManifest}} {
		got, err := c2.GetManifest(host, tc.repo, tc.d)
		if err != nil || !bytes.Equal(got.Data, m) || got.MediaType != tc.mt {
			t.Fatalf("after restart %s %s: %+v %v", tc.repo, tc.d, got, err)
		}
	}
}

func TestTags(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	d := digest.FromString("manifest")
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	if _, err := c.GetTag(host, repo, "latest"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing tag: %v", err)
	}
	if err := c.PutTag(host, repo, "latest", Tag{Digest: d, MediaType: ociManifest, FetchedAt: at}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "../x", "-x", strings.Repeat("a", 129), "a/b"} {
		if err := c.PutTag(host, repo, bad, Tag{Digest: d}); !errors.Is(err, ErrInvalidName) {
			t.Fatalf("tag %q: %v, want ErrInvalidName", bad, err)
		}
	}
	if err := c.PutTag(host, repo, "v1", Tag{Digest: "sha256:nothex"}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("bad digest: %v", err)
	}
	if _, err := c.GetTag(host, "other/app", "latest"); !errors.Is(err, ErrNotFound) {
		t.Fatal("tag visible in another repository")
	}
	// Replacing a record is atomic; the newest wins.
	d2 := digest.FromString("manifest 2")
	if err := c.PutTag(host, repo, "latest", Tag{Digest: d2, MediaType: ociManifest, FetchedAt: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2 := openCache(t, dir, Options{})
	got, err := c2.GetTag(host, repo, "latest")
	if err != nil || got.Digest != d2 || got.MediaType != ociManifest || !got.FetchedAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	// A corrupt record reads as absent, and PutTag replaces it.
	if err := os.WriteFile(c2.tagPath(scope{Host: host, Path: repo}, "latest"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.GetTag(host, repo, "latest"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("corrupt record: %v", err)
	}
	if err := c2.PutTag(host, repo, "latest", Tag{Digest: d}); err != nil {
		t.Fatal(err)
	}
	if got, err := c2.GetTag(host, repo, "latest"); err != nil || got.Digest != d {
		t.Fatalf("rewritten: %+v %v", got, err)
	}
}

// TestUnreadableManifestLinkIsDropped: a manifest link is a small file that
// holds the media type. One that a crash left empty (rename persisted before
// the data) or full of NULs must not serve the manifest with an empty or
// garbage Content-Type, by digest, until the end of time: it is dropped at
// start-up, so the next request goes upstream and stores it again.
func TestUnreadableManifestLinkIsDropped(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, Options{})
	m := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `"}`)
	d := digest.FromBytes(m)
	for _, r := range []string{repo, "other/app", "third/app"} {
		if err := c.PutManifest(host, r, d, ociManifest, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	link := func(r string) string {
		return filepath.Join(dir, "repos", host, r, "_manifests", "sha256", d.Encoded())
	}
	mustWrite(t, link(repo), nil)                     // empty after a crash
	mustWrite(t, link("other/app"), make([]byte, 41)) // zeros after a crash

	c2 := openCache(t, dir, Options{})
	for _, r := range []string{repo, "other/app"} {
		if got, err := c2.GetManifest(host, r, d); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: damaged link served %q with media type %q, err %v; want ErrNotFound", r, got.Data, got.MediaType, err)
		}
		if _, err := os.Stat(link(r)); !os.IsNotExist(err) {
			t.Errorf("%s: damaged link file left in place: %v", r, err)
		}
	}
	if got, err := c2.GetManifest(host, "third/app", d); err != nil || got.MediaType != ociManifest {
		t.Fatalf("intact link: %+v %v", got, err)
	}
	// Stored again, it serves.
	if err := c2.PutManifest(host, repo, d, ociManifest, m); err != nil {
		t.Fatal(err)
	}
	if got, err := c2.GetManifest(host, repo, d); err != nil || got.MediaType != ociManifest {
		t.Fatalf("stored again: %+v %v", got, err)
	}
}

// TestLinkManifestNeedsAMediaType: linking a manifest without naming its
// type, when the content was only ever stored as a blob, must not create a
// link that serves the manifest with an empty Content-Type.
func TestLinkManifestNeedsAMediaType(t *testing.T) {
	u := newUpstream(t)
	m := []byte(`{"schemaVersion":2,"mediaType":"` + ociManifest + `"}`)
	d := u.add(m)
	c := openCache(t, t.TempDir(), Options{})
	fetchAll(t, c, u, d, m) // fetched through the blob endpoint
	if err := c.LinkManifest(host, repo, d, ""); err == nil {
		t.Fatal("LinkManifest with no media type known succeeded")
	}
	if got, err := c.GetManifest(host, repo, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetManifest = %+v, %v; want ErrNotFound", got, err)
	}
}
