package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrPeer wraps every failure to read a blob from a peer; the fill then
// goes upstream.
var ErrPeer = errors.New("fleet peer")

// ErrRefused wraps a ping the peer answered 401 or 403: it refused this
// host's signature (another fleet secret, or another mode).
var ErrRefused = errors.New("refused this host's signature")

// peerIdleTimeout cuts a peer stream that sends nothing for this long, so
// that a holder that hangs (rather than dies) sends its followers upstream.
const peerIdleTimeout = 15 * time.Second

// client reads blobs from peers with signed requests.
type client struct {
	http    *http.Client
	sign    signer
	metrics *Metrics
	idle    time.Duration
}

func newClient(sign signer, m *Metrics, tr *http.Transport) *client {
	if tr == nil {
		tr = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ResponseHeaderTimeout: time.Minute, // the holder answers once its own upstream did
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			DisableCompression:    true,
		}
	}
	return &client{
		http:    &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		sign:    sign,
		metrics: m,
		idle:    peerIdleTimeout,
	}
}

// blobURL is the peer protocol's URL of d in repository host/repo at base.
func blobURL(base, host, repo string, d digest.Digest) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%w: advertised address %q is not an http(s) URL", ErrPeer, base)
	}
	u.Path = "/v2/" + host + "/" + repo + "/blobs/" + d.String()
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// open GETs d from the peer at base and returns the body and its size (-1
// when the peer does not know it yet). The body counts the bytes it reads
// and is cut when the peer goes silent for the idle timeout.
func (c *client) open(ctx context.Context, base, host, repo string, d digest.Digest) (io.ReadCloser, int64, error) {
	u, err := blobURL(base, host, repo, d)
	if err != nil {
		c.metrics.peerErrors.WithLabelValues("unreachable").Inc()
		return nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrPeer, err)
	}
	c.sign.sign(req)
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.peerErrors.WithLabelValues("unreachable").Inc()
		return nil, 0, fmt.Errorf("%w %s: %w", ErrPeer, base, err)
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		_ = resp.Body.Close()
		reason := "status"
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			reason = "refused" // another secret or another mode: a misconfigured fleet
		}
		c.metrics.peerErrors.WithLabelValues(reason).Inc()
		return nil, 0, fmt.Errorf("%w %s answered %s for %s", ErrPeer, base, resp.Status, d)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
		_ = resp.Body.Close()
		c.metrics.peerErrors.WithLabelValues("corrupt").Inc()
		return nil, 0, fmt.Errorf("%w %s answered %s for %s", ErrPeer, base, got, d)
	}
	b := &peerBody{body: resp.Body, metrics: c.metrics, idle: c.idle}
	b.timer = time.AfterFunc(c.idle, func() {
		b.mu.Lock()
		b.idled = true
		b.mu.Unlock()
		_ = resp.Body.Close()
	})
	return b, resp.ContentLength, nil
}

// ping GETs /v2/ of the peer at base: nil when it is reachable and accepts
// this host's signature (same secret, same mode).
func (c *client) ping(ctx context.Context, base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%w: advertised address %q is not an http(s) URL", ErrPeer, base)
	}
	u.Path = "/v2/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPeer, err)
	}
	c.sign.sign(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrPeer, base, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w %s answered %s: %w (its fleet secret or mode differs from this host's)", ErrPeer, base, resp.Status, ErrRefused)
	default:
		return fmt.Errorf("%w %s answered %s (not a tollgate peer listener?)", ErrPeer, base, resp.Status)
	}
}

// peerBody is a peer's response body: counted, and closed by its idle
// timer when the peer stops sending.
type peerBody struct {
	body    io.ReadCloser
	metrics *Metrics
	idle    time.Duration
	timer   *time.Timer

	mu     sync.Mutex
	idled  bool
	broken bool
}

func (b *peerBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
		b.metrics.peerBytes.Add(float64(n))
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		first := !b.broken
		b.broken = true
		idled := b.idled
		b.mu.Unlock()
		if first {
			b.metrics.peerErrors.WithLabelValues("broken").Inc()
		}
		if idled {
			err = fmt.Errorf("%w: sent nothing for %s: %w", ErrPeer, b.idle, err)
		} else {
			err = fmt.Errorf("%w: %w", ErrPeer, err)
		}
	}
	return n, err
}

func (b *peerBody) Close() error {
	b.timer.Stop()
	return b.body.Close()
}
