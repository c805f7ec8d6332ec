package authz

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Listen opens the plugin's unix socket at path, mode 0600 (the daemon
// connects as root). A socket file left by a plugin that is gone is
// replaced; a socket another live process answers on is an error, as is
// any other kind of file at path.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("plugin socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another --socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another process already serves %s; stop it first (two plugins cannot share one name)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("plugin socket: %w", err)
	}
	return l, nil
}

// Serve answers the plugin protocol on l until ctx ends, then stops taking
// requests, lets those in flight finish (at most shutdownTimeout) and
// returns. Closing a unix listener removes its socket file, so a stopped
// plugin leaves nothing the daemon could connect to: the daemon then
// refuses every request (fail closed).
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	const shutdownTimeout = 5 * time.Second
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
