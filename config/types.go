package config

import "time"

// Mode says whether the host serves a private or a shared (public) pool.
type Mode string

const (
	// ModePrivate sends credentials upstream and may cache private content.
	ModePrivate Mode = "private"
	// ModePublic never sends credentials upstream, so only public content is
	// ever fetched or cached.
	ModePublic Mode = "public"
)

// Config is the whole configuration file. Unknown keys are an error.
type Config struct {
	Mode      Mode                `yaml:"mode"`
	Allowlist []string            `yaml:"allowlist"`
	Proxy     Proxy               `yaml:"proxy"`
	Upstreams map[string]Upstream `yaml:"upstreams"`
	ECR       ECR                 `yaml:"ecr"`
	Refresh   Refresh             `yaml:"refresh"`
	Authz     Authz               `yaml:"authz"`
	Log       Log                 `yaml:"log"`
}

// Proxy configures `tollgate proxy`.
type Proxy struct {
	Listen string `yaml:"listen"`
	Cache  Cache  `yaml:"cache"`
	// Shared is the optional second cache tier shared by many hosts, through
	// distribution's storage drivers (filesystem, s3, gcs, azure).
	Shared *SharedCache `yaml:"shared,omitempty"`
	// ShutdownTimeout bounds how long SIGTERM waits for in-flight pulls.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Fleet makes the proxies of a fleet fetch each new blob from upstream
	// once (cross-host single flight); nil: this host alone.
	Fleet *Fleet `yaml:"fleet,omitempty"`
}

// Fleet configures the proxy's fleet mode (docs/fleet.md).
type Fleet struct {
	// Listen is the peer listener's host:port, separate from Proxy.Listen.
	Listen string `yaml:"listen"`
	// Advertise is the URL peers dial; default http://<listen>.
	Advertise string `yaml:"advertise,omitempty"`
	// SecretFile holds the secret every member shares (0600).
	SecretFile string `yaml:"secret_file"`
	// Lease is where fill leases live: "shared" (the shared tier's object
	// store, the default) or redis://HOST:PORT/DB.
	Lease string `yaml:"lease,omitempty"`
}

// Cache is the proxy's local content cache.
type Cache struct {
	Dir string `yaml:"dir"`
	// MaxSize is a byte size with an optional unit: 50GiB, 500MB, 1073741824.
	MaxSize string `yaml:"maxsize"`
}

// SharedCache names a distribution storage driver and its parameters.
type SharedCache struct {
	Driver     string         `yaml:"driver"`
	Parameters map[string]any `yaml:"parameters"`
}

// Upstream overrides how one registry host is reached. Keys of
// Config.Upstreams are canonical registry hosts as the allowlist names them.
type Upstream struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:5003. Plain http is
	// accepted for loopback addresses only.
	Endpoint string `yaml:"endpoint"`
	// CAFile is an optional PEM bundle trusted for this upstream in addition
	// to the system trust store.
	CAFile string `yaml:"ca_file,omitempty"`
}

// ECR configures the token engine.
type ECR struct {
	// RefreshMargin: a cached token with less life left than this is not
	// handed out; a new one is minted. Default 1h.
	RefreshMargin time.Duration `yaml:"refresh_margin"`
	// CacheDir overrides TOLLGATE_CACHE_DIR / $XDG_CACHE_HOME/tollgate.
	CacheDir string `yaml:"cache_dir"`
	// Registries holds optional per-registry settings, keyed by ECR host.
	Registries map[string]ECRRegistry `yaml:"registries"`
}

// ECRRegistry is how to get credentials for one ECR registry.
type ECRRegistry struct {
	Profile string `yaml:"profile,omitempty"`
	RoleARN string `yaml:"role_arn,omitempty"`
}

// Refresh configures `tollgate refresh`.
type Refresh struct {
	Registries []string `yaml:"registries"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	File   string `yaml:"file"`   // empty: stderr
}
