package proxybench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// StaticServer serves one image's manifest and blobs from local files, with
// nothing else: no routing, no policy, no cache bookkeeping, blobs sent with
// sendfile by http.ServeContent. It is the fastest a registry can serve a
// warm pull here, the yardstick for what is left to gain in a proxy's warm
// path.
type StaticServer struct {
	URL string
	srv *http.Server
}

// StartStaticServer copies repo:tag (a single-platform manifest) and its
// blobs from the registry at upstream (http://host:port) into dir, then
// serves them on a loopback port.
func StartStaticServer(ctx context.Context, upstream, repo, tag, dir string) (*StaticServer, error) {
	client := &http.Client{Timeout: 10 * time.Minute}
	m, body, mediaType, manifestDigest, err := fetchManifest(ctx, client, upstream, repo, tag, "")
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) > 0 || m.Config == nil {
		return nil, fmt.Errorf("%s:%s: the static server takes a single-platform image", repo, tag)
	}
	for _, d := range append([]descriptor{*m.Config}, m.Layers...) {
		if err := copyBlob(ctx, client, upstream, repo, d.Digest, filepath.Join(dir, strings.TrimPrefix(d.Digest, "sha256:"))); err != nil {
			return nil, err
		}
	}

	mux := http.NewServeMux()
	prefix := "/v2/" + repo
	mux.HandleFunc("GET "+prefix+"/manifests/{ref}", func(w http.ResponseWriter, r *http.Request) {
		if ref := r.PathValue("ref"); ref != tag && ref != manifestDigest {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", mediaType)
		w.Header().Set("Docker-Content-Digest", manifestDigest)
		w.Write(body)
	})
	mux.HandleFunc("GET "+prefix+"/blobs/{digest}", func(w http.ResponseWriter, r *http.Request) {
		hexDigest, ok := strings.CutPrefix(r.PathValue("digest"), "sha256:")
		if !ok || strings.ContainsAny(hexDigest, "/.") {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(filepath.Join(dir, hexDigest))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, f)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &StaticServer{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: mux}}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *StaticServer) Close() error { return s.srv.Close() }

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
