package dockerconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/spacelift-io/tollgate/internal/credsource"
	"github.com/spacelift-io/tollgate/internal/securefile"
)

// EnvConfigDir names the directory holding the docker config.json whose
// logins tollgate serves.
const EnvConfigDir = "SPACELIFT_DOCKER_CONFIG_DIR"

// ConfigFileName is the file read and written inside the config directory.
const ConfigFileName = "config.json"

// staleTempAge is when a temporary file of the config is surely left by a
// writer that died: writes take milliseconds, under the lock.
const staleTempAge = 10 * time.Minute

// Defaults for Store's bounds.
const (
	DefaultHelperTimeout = 10 * time.Second
	DefaultLockTimeout   = 30 * time.Second
)

var (
	// ErrNoConfigDir: SPACELIFT_DOCKER_CONFIG_DIR is not set, so there is
	// nowhere to store a login.
	ErrNoConfigDir = errors.New(EnvConfigDir + " is not set: tollgate stores logins in $" + EnvConfigDir + "/" + ConfigFileName + "; set it (e.g. export " + EnvConfigDir + "=/etc/tollgate/docker) and log in again")
	// ErrRelativeConfigDir: SPACELIFT_DOCKER_CONFIG_DIR is a relative path,
	// which each process would resolve against its own working directory.
	ErrRelativeConfigDir = errors.New(EnvConfigDir + " is a relative path")
	// ErrSharedConfig: the config dir is also the calling docker client's
	// config and names tollgate as its store, so docker would overwrite the
	// login tollgate writes.
	ErrSharedConfig = errors.New("the login store is also the docker client's own config")
)

// EnvHelperTimeout overrides DefaultHelperTimeout (a Go duration, e.g. "30s").
const EnvHelperTimeout = "TOLLGATE_CREDENTIAL_HELPER_TIMEOUT"

// DirFromEnv returns $SPACELIFT_DOCKER_CONFIG_DIR ("" when unset). A
// relative path is refused (CheckDir), and returned with the error for
// reports that show it. Every reader of the variable goes through here.
func DirFromEnv() (string, error) {
	dir := os.Getenv(EnvConfigDir)
	return dir, CheckDir(dir)
}

// CheckDir refuses a config directory that is a relative path: the helper
// runs in whatever directory docker, containerd or a build happens to be in,
// and would read and write logins there. The error wraps
// ErrRelativeConfigDir and says what to do. "" (unset) is no error.
func CheckDir(dir string) error {
	if dir == "" || filepath.IsAbs(dir) {
		return nil
	}
	return fmt.Errorf("%w (%q), which each process would resolve against the directory it happens to run in, reading and writing logins there: make it absolute, e.g. export %s=/etc/tollgate/docker",
		ErrRelativeConfigDir, dir, EnvConfigDir)
}

// FromEnv returns the Store the credential helper uses: Dir from
// $SPACELIFT_DOCKER_CONFIG_DIR (an error if it is relative), the delegated
// helper time bound from $TOLLGATE_CREDENTIAL_HELPER_TIMEOUT (an invalid
// value is reported on stderr and the default kept), and self as its own
// helper name.
func FromEnv(self string) (*Store, error) {
	dir, err := DirFromEnv()
	if err != nil {
		return nil, err
	}
	s := &Store{Dir: dir, Self: self}
	if v := os.Getenv(EnvHelperTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fmt.Fprintf(os.Stderr, "tollgate: warning: %s=%q is not a positive duration (e.g. 30s); using %s\n", EnvHelperTimeout, v, DefaultHelperTimeout)
		} else {
			s.HelperTimeout = d
		}
	}
	return s, nil
}

// Store serves and edits the logins of the docker config in Dir. The zero
// value of every field but Dir is usable. A Store is safe for concurrent use
// by goroutines and by processes: every write holds a lock on
// config.json.lock beside the file.
type Store struct {
	// Dir is the config directory; "" means there are no logins.
	Dir string
	// Self is this helper's name ("tollgate"): credHelpers/credsStore entries
	// naming it are skipped rather than run, so a config that names tollgate
	// itself does not recurse.
	Self string
	// HelperTimeout bounds each run of a delegated credential helper
	// (default 10s); a helper still running then is killed.
	HelperTimeout time.Duration
	// LockTimeout bounds the wait for the write lock (default 30s).
	LockTimeout time.Duration
	// Warnings receives warnings (exposed permissions, a delegated helper that
	// failed during list); nil means os.Stderr.
	Warnings io.Writer
	// MintedByCaller, if set, reports registries whose credentials the caller mints
	// itself (ECR hosts for the credential helper): List does not run the
	// credHelpers entry for them, which could call AWS.
	MintedByCaller func(serverURL string) bool
}

// Path returns the config file's path.
func (s *Store) Path() string { return filepath.Join(s.Dir, ConfigFileName) }

func (s *Store) warnings() io.Writer {
	if s.Warnings != nil {
		return s.Warnings
	}
	return os.Stderr
}

// Load reads and parses the config file. A missing file is an empty config.
func (s *Store) Load() (*File, error) {
	path := s.Path()
	_, err := os.Stat(path)
	s.checkPermissions(err == nil)
	return loadFile(path)
}

// Get returns the login for serverURL, as docker would resolve it from this
// config: a credHelpers entry for the registry runs that helper (its answer
// is final); else a credsStore runs that helper; else (or when the store has
// nothing) the auths entry. Helpers named Self are skipped. No login =>
// an error for which credsource.IsNotFound is true.
func (s *Store) Get(ctx context.Context, serverURL string) (username, secret string, err error) {
	if s.Dir == "" {
		return "", "", fmt.Errorf("%w (%s is not set)", credsource.ErrNotFound, EnvConfigDir)
	}
	if serverURL == "" {
		return "", "", errors.New("no server URL given")
	}
	f, err := s.Load()
	if err != nil {
		return "", "", err
	}
	if h, key := f.HelperFor(serverURL); h != "" && !s.isSelf(h) {
		return s.helperGet(ctx, h, fmt.Sprintf("credHelpers[%q]", key), serverURL)
	}
	if h := f.CredsStore; h != "" && !s.isSelf(h) {
		u, p, err := s.helperGet(ctx, h, "credsStore", serverURL)
		if !credsource.IsNotFound(err) {
			return u, p, err
		}
	}
	u, p, ok, err := f.Auth(serverURL)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", credsource.ErrNotFound
	}
	return u, p, nil
}

// Put stores a login for serverURL. When the config delegates that registry
// to another credential helper (credHelpers, else credsStore), the login is
// stored there, as docker login would; otherwise it is written to auths.
func (s *Store) Put(ctx context.Context, serverURL, username, secret string) error {
	if s.Dir == "" {
		return ErrNoConfigDir
	}
	if serverURL == "" {
		return errors.New("no server URL given")
	}
	if username == "" {
		return errors.New("no user name given")
	}
	f, err := s.Load()
	if err != nil {
		return err
	}
	if h, origin := s.delegateFor(f, serverURL); h != "" {
		return s.helperStore(ctx, h, origin, serverURL, username, secret)
	}
	if err := s.checkNotCallersConfig(f, serverURL); err != nil {
		return err
	}
	return s.Update(ctx, func(f *File) error {
		f.SetAuth(serverURL, username, secret)
		return nil
	})
}

// Erase removes the login for serverURL: from the delegated helper when the
// config names one for it, and every auths entry for the registry. Erasing
// a login that does not exist is not an error.
func (s *Store) Erase(ctx context.Context, serverURL string) error {
	if s.Dir == "" {
		return ErrNoConfigDir
	}
	if serverURL == "" {
		return errors.New("no server URL given")
	}
	f, err := s.Load()
	if err != nil {
		return err
	}
	if h, origin := s.delegateFor(f, serverURL); h != "" {
		if err := s.helperErase(ctx, h, origin, serverURL); err != nil {
			return err
		}
	}
	return s.Update(ctx, func(f *File) error {
		f.RemoveAuth(serverURL)
		return nil
	})
}

// List returns every login this config can serve, server URL -> user name:
// the auths entries holding a credential, what the credsStore helper lists,
// and each credHelpers registry its helper has a login for. A delegated
// helper that fails is reported on Warnings and skipped.
func (s *Store) List(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	if s.Dir == "" {
		return out, nil
	}
	f, err := s.Load()
	if err != nil {
		return nil, err
	}
	for k, u := range f.Logins() {
		out[k] = u
	}
	if h := f.CredsStore; h != "" && !s.isSelf(h) {
		got, err := s.helperList(ctx, h, "credsStore")
		if err != nil {
			fmt.Fprintf(s.warnings(), "tollgate: warning: %v\n", err)
		}
		for k, u := range got {
			out[k] = u
		}
	}
	hosts := make([]string, 0, len(f.CredHelpers))
	for k := range f.CredHelpers {
		hosts = append(hosts, k)
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		h := f.CredHelpers[host]
		if s.isSelf(h) || (s.MintedByCaller != nil && s.MintedByCaller(host)) {
			continue
		}
		u, _, err := s.helperGet(ctx, h, fmt.Sprintf("credHelpers[%q]", host), host)
		switch {
		case err == nil:
			out[host] = u
		case !credsource.IsNotFound(err):
			fmt.Fprintf(s.warnings(), "tollgate: warning: %v\n", err)
		}
	}
	return out, nil
}

// Update runs fn on the config under the write lock: the file is re-read
// after the lock is taken, and written back (atomically, mode 0600) only if
// fn changed it. A file that does not parse is never written: Update
// returns its ParseError. The refresher uses Update to write auths entries.
func (s *Store) Update(ctx context.Context, fn func(f *File) error) error {
	if s.Dir == "" {
		return ErrNoConfigDir
	}
	return edit(ctx, s.Path(), s.LockTimeout, s.Load, fn)
}

// Edit is Update for a docker config file at any path (refresh --output):
// the same lock (path+".lock"), re-read, atomic write, and refusal to
// overwrite a file that does not parse. A missing file starts empty.
func Edit(ctx context.Context, path string, lockTimeout time.Duration, fn func(f *File) error) error {
	return edit(ctx, path, lockTimeout, func() (*File, error) { return loadFile(path) }, fn)
}

func loadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &File{Path: path}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	return Parse(path, data)
}

func edit(ctx context.Context, path string, lockTimeout time.Duration, load func() (*File, error), fn func(f *File) error) error {
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	lctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	lock, err := securefile.LockFile(lctx, path+".lock")
	if err != nil {
		return fmt.Errorf("lock docker config %s: %w", path, err)
	}
	defer lock.Unlock()
	if err := checkSymlinkOwner(path); err != nil {
		return err
	}
	f, err := load()
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		return err
	}
	if !f.Changed() {
		return nil
	}
	data, err := f.Marshal()
	if err != nil {
		return fmt.Errorf("encode docker config %s: %w", path, err)
	}
	target := path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		target = real // keep a symlinked config a symlink, as docker does
	}
	// securefile keeps the owner of the file it replaces (root refreshing
	// another user's config).
	if err := securefile.WriteFile(target, data); err != nil {
		return fmt.Errorf("write docker config: %w", err)
	}
	// A writer killed before its rename left a copy of every login; writers
	// hold this lock, so an old one is certainly dead.
	securefile.RemoveStaleTemps(target, staleTempAge)
	return nil
}

// delegateFor returns the helper that holds logins for serverURL other than
// tollgate itself ("" if none) and where the config names it.
func (s *Store) delegateFor(f *File, serverURL string) (helper, origin string) {
	if h, key := f.HelperFor(serverURL); h != "" {
		if s.isSelf(h) {
			return "", ""
		}
		return h, fmt.Sprintf("credHelpers[%q]", key)
	}
	if h := f.CredsStore; h != "" && !s.isSelf(h) {
		return h, "credsStore"
	}
	return "", ""
}

// checkNotCallersConfig refuses a store into the docker client's own config
// file when that file names tollgate as the store for serverURL: docker
// would run tollgate, which writes the login into auths, and then save its
// in-memory copy of the same file over it, losing the login silently.
func (s *Store) checkNotCallersConfig(f *File, serverURL string) error {
	h, _ := f.HelperFor(serverURL)
	if h == "" {
		h = f.CredsStore
	}
	if h == "" || !s.isSelf(h) {
		return nil
	}
	clientDir := os.Getenv("DOCKER_CONFIG")
	if clientDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil
		}
		clientDir = filepath.Join(home, ".docker")
	}
	a, err1 := os.Stat(clientDir)
	b, err2 := os.Stat(s.Dir)
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		return nil
	}
	return fmt.Errorf("%w: %s is both the docker client's config (DOCKER_CONFIG) and tollgate's login store (%s), and names %q as its credential store, so docker would overwrite the login as soon as tollgate saved it; point %s at a separate directory, or log in with plain docker there (no credsStore in that file)",
		ErrSharedConfig, s.Path(), EnvConfigDir, h, EnvConfigDir)
}

// checkSymlinkOwner refuses, when we are root, a config that is a symlink
// made by another user to a file that user does not own: a runner could
// otherwise point its config.json at /etc/docker/daemon.json or root's own
// docker config, and root's refresh would write logins into it. A link to
// the user's own file, a root-made link and a dangling link (replaced
// itself by the write) are fine.
func checkSymlinkOwner(path string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	li, err := os.Lstat(path)
	if err != nil || li.Mode()&os.ModeSymlink == 0 {
		return nil
	}
	link, ok := li.Sys().(*syscall.Stat_t)
	if !ok || link.Uid == 0 {
		return nil
	}
	ti, err := os.Stat(path)
	if err != nil {
		return nil
	}
	if target, ok := ti.Sys().(*syscall.Stat_t); ok && target.Uid == link.Uid {
		return nil
	}
	dest, _ := filepath.EvalSymlinks(path)
	return fmt.Errorf("docker config %s is a symlink made by uid %d to %s, a file that user does not own; tollgate, running as root, does not write through it: replace the symlink with the file itself, or run tollgate as that user", path, link.Uid, dest)
}
