package fleet

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spacelift-io/tollgate/config"
	"github.com/spacelift-io/tollgate/proxy/fleet/lease"
)

// Open builds this host's Node from the proxy.fleet section: it reads the
// secret file (refusing one other users can read) and opens the lease
// engine (proxy.fleet.lease: the shared tier's store, or Redis) in the
// mode's namespace. Close the Node to release the engine.
func Open(ctx context.Context, f *config.Fleet, mode config.Mode, shared *config.SharedCache, log *slog.Logger) (*Node, error) {
	secret, err := ReadSecret(f.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("proxy.fleet.secret_file: %w", err)
	}
	var driver string
	var params map[string]any
	if shared != nil {
		driver, params = shared.Driver, shared.Parameters
	}
	store, err := lease.Open(ctx, f.Lease, Namespace(string(mode)), driver, params)
	if err != nil {
		return nil, fmt.Errorf("proxy.fleet.lease: %w", err)
	}
	n, err := New(Options{Advertise: f.Advertise, Secret: secret, Mode: string(mode), Leases: store, Logger: log})
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	return n, nil
}

// Close releases the lease engine's connections.
func (n *Node) Close() error { return n.opts.Leases.Close() }
