package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/securefile"
)

// Manifest is a cached manifest as served for one repository.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Data      []byte
}

// PutManifest verifies data against d and stores it, linked to (host, repo)
// with its media type. Call it with what the upstream answered for that
// repository. Data above MaxManifestSize is refused with ErrTooLarge.
func (c *Cache) PutManifest(host, repo string, d digest.Digest, mediaType string, data []byte) error {
	s, err := newScope(host, repo)
	if err != nil {
		return err
	}
	if err := checkDigest(d); err != nil {
		return err
	}
	if len(data) > MaxManifestSize {
		return fmt.Errorf("manifest %s: %w: %d bytes (limit %d)", d, ErrTooLarge, len(data), MaxManifestSize)
	}
	if err := checkMediaType(mediaType); err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	if got := d.Algorithm().FromBytes(data); got != d {
		return fmt.Errorf("manifest %s: %w (it hashes to %s)", d, ErrDigestMismatch, got)
	}
	wrote := false
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		if c.entries[d] != nil || wrote {
			break
		}
		c.mu.Unlock()
		if err := c.writeContent(d, data); err != nil {
			return err
		}
		wrote = true
	}
	// c.mu is held.
	e, added := c.indexLocked(d, int64(len(data)))
	if !added {
		if persist := c.touch(e); persist != nil {
			defer persist()
		}
	}
	l := link{s, kindManifest}
	old, had := e.links[l]
	e.links[l] = mediaType
	c.mu.Unlock()
	if !had || old != mediaType {
		if err := c.writeLink(l, d, mediaType); err != nil {
			return err
		}
	}
	c.evict()
	return nil
}

// writeContent writes small verified content into blobs/ durably.
func (c *Cache) writeContent(d digest.Digest, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "put-*")
	if err != nil {
		return fmt.Errorf("cache: create temp file: %w", err)
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = commitFile(tmp.Name(), c.blobPath(d))
	}
	if werr != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("cache: store %s: %w", d, werr)
	}
	return nil
}

// GetManifest returns manifest d if it is cached for (host, repo), else
// ErrNotFound. It never goes upstream.
func (c *Cache) GetManifest(host, repo string, d digest.Digest) (Manifest, error) {
	s, err := newScope(host, repo)
	if err != nil {
		return Manifest{}, err
	}
	if err := checkDigest(d); err != nil {
		return Manifest{}, err
	}
	c.mu.Lock()
	e := c.entries[d]
	var mt string
	ok := false
	if e != nil {
		mt, ok = e.links[link{s, kindManifest}]
	}
	if !ok {
		c.mu.Unlock()
		return Manifest{}, fmt.Errorf("manifest %s in %s: %w", d, s, ErrNotFound)
	}
	if e.size > MaxManifestSize {
		c.mu.Unlock()
		return Manifest{}, fmt.Errorf("manifest %s: %w", d, ErrTooLarge)
	}
	e.refs++
	persist := c.touch(e)
	c.mu.Unlock()
	if persist != nil {
		persist()
	}
	data, err := os.ReadFile(c.blobPath(d))
	c.mu.Lock()
	e.refs--
	if errors.Is(err, fs.ErrNotExist) && c.entries[d] == e {
		c.dropLocked(e)
	}
	c.mu.Unlock()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Manifest{}, fmt.Errorf("manifest %s in %s: %w", d, s, ErrNotFound)
		}
		return Manifest{}, fmt.Errorf("cache: read manifest %s: %w", d, err)
	}
	c.stats.hits.Add(1)
	c.stats.bytesFromCache.Add(int64(len(data)))
	c.stats.bytesServed.Add(int64(len(data)))
	return Manifest{Digest: d, MediaType: mt, Data: data}, nil
}

// Tag is what a tag pointed to when the proxy last asked the upstream.
type Tag struct {
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	FetchedAt time.Time     `json:"fetchedAt"`
}

// PutTag records (host, repo, tag) -> t, atomically and durably. Record a
// tag only after its manifest is stored (PutManifest), so a tag never points
// to a manifest that was never cached.
func (c *Cache) PutTag(host, repo, tag string, t Tag) error {
	s, err := newScope(host, repo)
	if err != nil {
		return err
	}
	if err := checkTag(tag); err != nil {
		return err
	}
	if err := checkDigest(t.Digest); err != nil {
		return err
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := securefile.WriteFile(c.tagPath(s, tag), data); err != nil {
		return fmt.Errorf("cache: record tag %s:%s: %w", s, tag, err)
	}
	return nil
}

// GetTag returns the last record of (host, repo, tag), or ErrNotFound. The
// manifest it names may since have been evicted: GetManifest says.
func (c *Cache) GetTag(host, repo, tag string) (Tag, error) {
	s, err := newScope(host, repo)
	if err != nil {
		return Tag{}, err
	}
	if err := checkTag(tag); err != nil {
		return Tag{}, err
	}
	data, err := os.ReadFile(c.tagPath(s, tag))
	if errors.Is(err, fs.ErrNotExist) {
		return Tag{}, fmt.Errorf("tag %s:%s: %w", s, tag, ErrNotFound)
	}
	if err != nil {
		return Tag{}, fmt.Errorf("cache: read tag %s:%s: %w", s, tag, err)
	}
	var t Tag
	if err := json.Unmarshal(data, &t); err != nil || t.Digest.Validate() != nil {
		// A record that does not parse is treated as absent; the proxy
		// refetches and PutTag replaces it.
		c.log.Warn("cache: unreadable tag record, ignoring it", "tag", s.String()+":"+tag)
		return Tag{}, fmt.Errorf("tag %s:%s: %w (unreadable record)", s, tag, ErrNotFound)
	}
	return t, nil
}
