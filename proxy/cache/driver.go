package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/opencontainers/go-digest"

	"github.com/spacelift-io/tollgate/internal/securefile"

	// The filesystem driver (a path on shared storage) is always available;
	// binaries that offer s3, gcs or azure import those driver packages.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// DriverTier is a SharedTier on a distribution/v3 storage driver. Objects
// live at <root>/blobs/<alg>/<hex[:2]>/<hex>; uploads are written under
// <root>/uploads/ and moved into place when complete, so a reader never
// finds a partial object under a digest's name (and if it did, the cache
// verifies every byte it reads from the tier).
type DriverTier struct {
	d    storagedriver.StorageDriver
	root string
}

var (
	_ SharedTier         = (*DriverTier)(nil)
	_ staleUploadRemover = (*DriverTier)(nil)
)

// NewDriverTier uses d with objects under root ("" means "/tollgate").
func NewDriverTier(d storagedriver.StorageDriver, root string) *DriverTier {
	if root == "" {
		root = "/tollgate"
	}
	return &DriverTier{d: d, root: path.Clean("/" + root)}
}

// OpenDriverTier creates the named storage driver ("filesystem", or "s3",
// "gcs", "azure" when the binary imports them) with its distribution
// parameters, e.g. {"rootdirectory": "/mnt/shared/tollgate"} or
// {"bucket": ..., "region": ...}.
//
// In private mode the tier holds private images: a filesystem root that does
// not exist yet is created 0700 (the driver itself would make it 0755), so
// only the user the proxies run as can read it. Restrict an object store
// bucket the same way.
func OpenDriverTier(ctx context.Context, name string, params map[string]any) (*DriverTier, error) {
	if root, ok := params["rootdirectory"].(string); ok && name == "filesystem" && root != "" {
		if err := securefile.MkdirPrivate(root); err != nil {
			return nil, fmt.Errorf("cache: shared tier directory: %w", err)
		}
	}
	d, err := factory.Create(ctx, name, params)
	if err != nil {
		return nil, fmt.Errorf("cache: shared tier driver %q: %w", name, err)
	}
	return NewDriverTier(d, ""), nil
}

func (t *DriverTier) path(d digest.Digest) string {
	h := d.Encoded()
	return path.Join(t.root, "blobs", string(d.Algorithm()), h[:2], h)
}

func notFound(err error) bool {
	var pnf storagedriver.PathNotFoundError
	return errors.As(err, &pnf)
}

// Stat implements SharedTier.
func (t *DriverTier) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	fi, err := t.d.Stat(ctx, t.path(d))
	if err != nil {
		if notFound(err) {
			return 0, fmt.Errorf("shared tier: %s: %w", d, ErrNotFound)
		}
		return 0, fmt.Errorf("shared tier: stat %s: %w", d, err)
	}
	if fi.IsDir() {
		return 0, fmt.Errorf("shared tier: %s: %w", d, ErrNotFound)
	}
	return fi.Size(), nil
}

// Open implements SharedTier.
func (t *DriverTier) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	rc, err := t.d.Reader(ctx, t.path(d), 0)
	if err != nil {
		if notFound(err) {
			return nil, fmt.Errorf("shared tier: %s: %w", d, ErrNotFound)
		}
		return nil, fmt.Errorf("shared tier: read %s: %w", d, err)
	}
	return rc, nil
}

// Put implements SharedTier.
func (t *DriverTier) Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) error {
	var rnd [12]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(t.root, "uploads", hex.EncodeToString(rnd[:]))
	w, err := t.d.Writer(ctx, tmp, false)
	if err != nil {
		return fmt.Errorf("shared tier: upload %s: %w", d, err)
	}
	n, err := io.Copy(w, r)
	if err == nil && n != size {
		err = fmt.Errorf("%w: copied %d of %d bytes", ErrSizeMismatch, n, size)
	}
	if err == nil {
		err = w.Commit(ctx)
	}
	if err != nil {
		_ = w.Cancel(ctx)
		_ = w.Close()
		_ = t.d.Delete(ctx, tmp)
		return fmt.Errorf("shared tier: upload %s: %w", d, err)
	}
	if err := w.Close(); err != nil {
		_ = t.d.Delete(ctx, tmp)
		return fmt.Errorf("shared tier: upload %s: %w", d, err)
	}
	if err := t.d.Move(ctx, tmp, t.path(d)); err != nil {
		_ = t.d.Delete(ctx, tmp)
		return fmt.Errorf("shared tier: upload %s: %w", d, err)
	}
	return nil
}

// StaleUploadAge is how old an object under <root>/uploads/ must be before
// RemoveStaleUploads takes it for the leftover of a host that died in the
// middle of an upload: no upload of one blob takes a day, so a younger one
// may be another host's upload in progress.
const StaleUploadAge = 24 * time.Hour

// RemoveStaleUploads deletes the objects under <root>/uploads/ last modified
// more than olderThan ago (partial uploads of hosts killed mid-upload; they
// never appear under a digest's name, but would otherwise stay forever) and
// returns how many it removed. Cache.Open runs it in the background.
func (t *DriverTier) RemoveStaleUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	dir := path.Join(t.root, "uploads")
	var stale []string
	err := t.d.Walk(ctx, dir, func(fi storagedriver.FileInfo) error {
		if !fi.IsDir() && time.Since(fi.ModTime()) > olderThan {
			stale = append(stale, fi.Path())
		}
		return nil
	})
	if err != nil && !notFound(err) {
		return 0, fmt.Errorf("shared tier: list %s: %w", dir, err)
	}
	removed := 0
	for _, p := range stale {
		if err := t.d.Delete(ctx, p); err != nil && !notFound(err) {
			return removed, fmt.Errorf("shared tier: remove stale upload %s: %w", p, err)
		}
		removed++
	}
	return removed, nil
}

// Delete implements SharedTier.
func (t *DriverTier) Delete(ctx context.Context, d digest.Digest) error {
	if err := t.d.Delete(ctx, t.path(d)); err != nil && !notFound(err) {
		return fmt.Errorf("shared tier: delete %s: %w", d, err)
	}
	return nil
}
