package refresh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spacelift-io/tollgate/dockerconfig"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// ConfigDir writes tokens into $SPACELIFT_DOCKER_CONFIG_DIR/config.json
// through dockerconfig.Store.Update: under the same lock the credential
// helper takes, written atomically with mode 0600, every other entry and
// field kept.
type ConfigDir struct {
	Store *dockerconfig.Store
}

// Hosts returns the auths keys of the config.
func (c ConfigDir) Hosts(ctx context.Context) ([]string, error) {
	f, err := c.Store.Load()
	if err != nil {
		return nil, err
	}
	return f.Keys(), nil
}

// Write sets an auths entry for each token. Run by root on a config that
// belongs to another user, it gives the new file back to that user.
func (c ConfigDir) Write(ctx context.Context, tokens map[string]Token) error {
	uid, gid := ownerToRestore(c.Store.Path())
	err := c.Store.Update(ctx, func(f *dockerconfig.File) error {
		setAuths(f, tokens)
		return nil
	})
	if err == nil && uid >= 0 {
		if err := os.Chown(c.Store.Path(), uid, gid); err != nil {
			return fmt.Errorf("give %s back to its owner: %w", c.Store.Path(), err)
		}
	}
	return err
}

// ownerToRestore returns the owner of path when this process is root and
// the file belongs to someone else, and -1, -1 otherwise.
func ownerToRestore(path string) (uid, gid int) {
	if fi, err := os.Stat(path); err == nil && os.Geteuid() == 0 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			return int(st.Uid), int(st.Gid)
		}
	}
	return -1, -1
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
	timeout := c.LockTimeout
	if timeout <= 0 {
		timeout = dockerconfig.DefaultLockTimeout
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lock, err := securefile.LockFile(lctx, c.Path+".lock")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	f, err := c.load()
	if err != nil {
		return err
	}
	setAuths(f, tokens)
	if !f.Changed() {
		return nil
	}
	data, err := f.Marshal()
	if err != nil {
		return fmt.Errorf("encode docker config: %w", err)
	}
	target := c.Path
	if real, err := filepath.EvalSymlinks(c.Path); err == nil {
		target = real
	}
	return writeKeepingOwner(target, data)
}

// writeKeepingOwner replaces path atomically (securefile.WriteFile). When
// root replaces a file that belongs to another user (refresh run from root's
// crontab for the runner user's config), the new file is given back to that
// owner, so that the user's own tools can still read it.
func writeKeepingOwner(path string, data []byte) error {
	uid, gid := ownerToRestore(path)
	if err := securefile.WriteFile(path, data); err != nil {
		return err
	}
	if uid >= 0 {
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("give %s back to its owner: %w", path, err)
		}
	}
	return nil
}

func (c ConfigFile) String() string { return c.Path }
