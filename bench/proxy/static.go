package proxybench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The yardsticks: bare file servers that serve one image's manifest and
// blobs from local files with nothing else (no routing, no policy, no cache
// bookkeeping), the fastest a registry can serve a warm pull here. A proxy's
// warm pull is measured against the faster of the two. The benchmarks run
// each in a process of its own, as the proxies run (yardstick_test.go).

// Sender is how a yardstick sends a blob's bytes to the socket.
type Sender int

const (
	// Sendfile serves blobs with http.ServeContent on the open file: the
	// kernel's sendfile(2), no copy through user space.
	Sendfile Sender = iota
	// WriteBuffer reads each blob into a 1 MiB buffer with read(2) and
	// writes it to the socket with write(2).
	WriteBuffer
)

// writeBufferSize is WriteBuffer's buffer.
const writeBufferSize = 1 << 20

// String is the sub-benchmark name of the yardstick that sends this way.
func (s Sender) String() string {
	switch s {
	case Sendfile:
		return "sendfile"
	case WriteBuffer:
		return "write"
	}
	return "sender(" + strconv.Itoa(int(s)) + ")"
}

// ParseSender is the Sender named s (sendfile or write).
func ParseSender(s string) (Sender, error) {
	for _, v := range []Sender{Sendfile, WriteBuffer} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown sender %q (sendfile, write)", s)
}

// StaticImage is one single-platform image copied to local files: what the
// yardsticks serve.
type StaticImage struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Manifest   []byte `json:"manifest"`
	MediaType  string `json:"mediaType"`
	Digest     string `json:"digest"`
	dir        string // one file per blob, named by its digest's hex, and imageFile
}

// imageFile holds a StaticImage's manifest and names, beside its blobs.
const imageFile = "image.json"

// CopyImage copies repo:tag (a single-platform manifest) and its blobs from
// the registry at upstream (http://host:port) into dir, verifying every
// digest.
func CopyImage(ctx context.Context, upstream, repo, tag, dir string) (*StaticImage, error) {
	client := &http.Client{Timeout: 10 * time.Minute}
	m, body, mediaType, manifestDigest, err := fetchManifest(ctx, client, upstream, repo, tag, "")
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) > 0 || m.Config == nil {
		return nil, fmt.Errorf("%s:%s: the yardsticks take a single-platform image", repo, tag)
	}
	for _, d := range append([]descriptor{*m.Config}, m.Layers...) {
		if err := copyBlob(ctx, client, upstream, repo, d.Digest, filepath.Join(dir, strings.TrimPrefix(d.Digest, "sha256:"))); err != nil {
			return nil, err
		}
	}
	img := &StaticImage{Repository: repo, Tag: tag, Manifest: body, MediaType: mediaType, Digest: manifestDigest, dir: dir}
	meta, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	return img, os.WriteFile(filepath.Join(dir, imageFile), meta, 0o644)
}

// LoadStaticImage is the image CopyImage copied into dir.
func LoadStaticImage(dir string) (*StaticImage, error) {
	meta, err := os.ReadFile(filepath.Join(dir, imageFile))
	if err != nil {
		return nil, err
	}
	img := &StaticImage{dir: dir}
	if err := json.Unmarshal(meta, img); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, imageFile), err)
	}
	return img, nil
}

// Dir is where the image's files are.
func (img *StaticImage) Dir() string { return img.dir }

// Handler serves the image as a registry's pull API does, /v2/ included,
// sending blobs the way s says.
func (img *StaticImage) Handler(s Sender) (http.Handler, error) {
	var send func(w http.ResponseWriter, r *http.Request, f *os.File)
	switch s {
	case Sendfile:
		send = func(w http.ResponseWriter, r *http.Request, f *os.File) {
			http.ServeContent(w, r, "", time.Time{}, f)
		}
	case WriteBuffer:
		send = writeBlob
	default:
		return nil, fmt.Errorf("unknown sender %v", s)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/{$}", func(w http.ResponseWriter, r *http.Request) {})
	prefix := "/v2/" + img.Repository
	mux.HandleFunc("GET "+prefix+"/manifests/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if ref := r.PathValue("ref"); ref != img.Tag && ref != img.Digest {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", img.MediaType)
		w.Header().Set("Docker-Content-Digest", img.Digest)
		w.Write(img.Manifest)
	})
	mux.HandleFunc("GET "+prefix+"/blobs/{digest}", func(w http.ResponseWriter, r *http.Request) {
		hexDigest, ok := strings.CutPrefix(r.PathValue("digest"), "sha256:")
		if !ok || strings.ContainsAny(hexDigest, "/.") {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(filepath.Join(img.dir, hexDigest))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		send(w, r, f)
	})
	return mux, nil
}

// writeBlob sends the whole file with read(2) into a 1 MiB buffer and
// write(2) of it. The loop is written out because io.Copy would find the
// response's ReaderFrom and use sendfile; a write that large passes the
// response's small buffers straight to the socket.
func writeBlob(w http.ResponseWriter, _ *http.Request, f *os.File) {
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	buf := make([]byte, writeBufferSize)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			panic(http.ErrAbortHandler) // the client must not take a short blob for a whole one
		}
	}
}

func copyBlob(ctx context.Context, client *http.Client, upstream, repo, digest, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, upstream+"/v2/"+repo+"/blobs/"+digest, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET blob %s: %s", digest, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("blob %s: got %s", digest, got)
	}
	return nil
}
