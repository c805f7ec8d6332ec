package refresh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/spacelift-io/tollgate/dockerconfig"
)

// ConfigDir writes tokens into $SPACELIFT_DOCKER_CONFIG_DIR/config.json
// through dockerconfig.Store.Update: under the same lock the credential
// helper takes, written atomically with mode 0600, every other entry and
// field kept.
type ConfigDir struct {
	Store *dockerconfig.Store
}

var (
	_ Sink       = ConfigDir{}
	_ HostSource = ConfigDir{}
)

// Hosts returns the auths keys of the config.
func (c ConfigDir) Hosts(ctx context.Context) ([]string, error) {
	f, err := c.Store.Load()
	if err != nil {
		return nil, err
	}
	return f.Keys(), nil
}

// Write sets an auths entry for each token. Run by root on a config that
// belongs to another user, the file keeps that owner (securefile does it).
func (c ConfigDir) Write(ctx context.Context, tokens map[string]Token) error {
	return c.Store.Update(ctx, func(f *dockerconfig.File) error {
		setAuths(f, tokens)
		return nil
	})
}

func (c ConfigDir) String() string { return c.Store.Path() }

// setAuths writes each token into f's auths, leaving an entry that already
// holds the same token alone (so an unchanged file is not rewritten).
func setAuths(f *dockerconfig.File, tokens map[string]Token) {
	for host, tok := range tokens {
		if u, p, ok, err := f.Auth(host); err == nil && ok && u == tok.Username && p == tok.Password {
			continue
		}
		f.SetAuth(host, tok.Username, tok.Password)
	}
}

// ConfigFile writes tokens into the docker config at Path (--output): the
// same read-modify-write as ConfigDir, locked on Path+".lock".
type ConfigFile struct {
	Path string
	// LockTimeout bounds the wait for the lock (default 30s).
	LockTimeout time.Duration
}

func (c ConfigFile) load() (*dockerconfig.File, error) {
	data, err := os.ReadFile(c.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return dockerconfig.Parse(c.Path, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	return dockerconfig.Parse(c.Path, data)
}

var (
	_ Sink       = ConfigFile{}
	_ HostSource = ConfigFile{}
)

// Hosts returns the auths keys of the file (none if it does not exist).
func (c ConfigFile) Hosts(ctx context.Context) ([]string, error) {
	f, err := c.load()
	if err != nil {
		return nil, err
	}
	return f.Keys(), nil
}

// Write sets an auths entry for each token. A file that does not parse is
// left as it is and its parse error returned.
func (c ConfigFile) Write(ctx context.Context, tokens map[string]Token) error {
	return dockerconfig.Edit(ctx, c.Path, c.LockTimeout, func(f *dockerconfig.File) error {
		setAuths(f, tokens)
		return nil
	})
}

func (c ConfigFile) String() string { return c.Path }
