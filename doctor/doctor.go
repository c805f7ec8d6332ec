package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spacelift-io/tollgate/config"
)

// Status is the outcome of one check.
type Status string

// Outcomes. Only StatusFail makes the run fail; a warning is reported but
// does not stop tollgate from working.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	StatusSkip Status = "skip"
)

// Result is what one check found.
type Result struct {
	// Name identifies the check: config, allowlist, config-dir, cache-dir,
	// helper, proxy-cache, proxy-shared, fleet-lease, fleet-peers, imds,
	// aws-credentials, aws-identity, ecr, proxy, authz (and
	// proxy-cache-verify from VerifyProxyCache).
	Name string `json:"name"`
	// Target is what was checked when a check runs more than once (the
	// registry host for ecr).
	Target string `json:"target,omitempty"`
	Status Status `json:"status"`
	// Detail says, in plain words, what was found.
	Detail string `json:"detail"`
	// Fix says what to do; set on failures and warnings.
	Fix string `json:"fix,omitempty"`
	// Took is how long the check ran.
	Took time.Duration `json:"took_ns"`
}

// Options says what to check.
type Options struct {
	// ConfigPath is the tollgate config file ("" = $TOLLGATE_CONFIG, else
	// the built-in default).
	ConfigPath string
	// ConfigDir is $SPACELIFT_DOCKER_CONFIG_DIR ("" = not set).
	ConfigDir string
	// Registries are ECR hosts to try GetAuthorizationToken against.
	Registries []string
	// ProxyURL is the base URL of a tollgate proxy to probe ("" = skip).
	ProxyURL string
	// DockerHost is the daemon whose authorization plugin is checked
	// ("" = DefaultDockerHost).
	DockerHost string
	// Timeout bounds each check (default 5s).
	Timeout time.Duration
	// HTTPClient is used for the proxy probe (default: a client with
	// Timeout).
	HTTPClient *http.Client
}

// Report is the outcome of a run.
type Report struct {
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
}

// DefaultTimeout bounds each check.
const DefaultTimeout = 5 * time.Second

// Run runs every check and returns their results in a fixed order. Checks
// that do not depend on each other run at once; the whole run takes about
// as long as the slowest chain of checks, a few times Timeout at most.
func Run(ctx context.Context, o Options) Report {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	d := &run{o: o}

	// The config first: the others read it (cache dir, ECR settings).
	cfgRes, cfg := d.timed("config", "", func(ctx context.Context) (Result, *config.Config) { return checkConfig(o.ConfigPath) })(ctx)
	// The checks are listed first and then run at once, each writing only
	// its own slot of results.
	var checks []func(ctx context.Context) []Result
	add := func(f func(ctx context.Context) []Result) { checks = append(checks, f) }
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "allowlist", "", func(context.Context) Result { return checkAllowlist(cfg) })}
	})
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "config-dir", "", func(context.Context) Result { return checkConfigDir(o.ConfigDir) })}
	})
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "cache-dir", "", func(context.Context) Result { return checkCacheDir(cacheDirOf(cfg)) })}
	})
	add(func(ctx context.Context) []Result { return []Result{d.check(ctx, "helper", "", checkHelper)} })
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "proxy-cache", "", func(context.Context) Result { return checkProxyCacheDir(cfg) })}
	})
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "proxy-shared", "", func(ctx context.Context) Result { return checkSharedTier(ctx, cfg) })}
	})
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "fleet-lease", "", func(ctx context.Context) Result { return checkFleetLease(ctx, cfg) })}
	})
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "fleet-peers", "", func(ctx context.Context) Result { return checkFleetPeers(ctx, cfg, o.ProxyURL != "") })}
	})
	add(d.awsChecks)
	for _, h := range o.Registries {
		add(func(ctx context.Context) []Result {
			return []Result{d.check(ctx, "ecr", h, func(ctx context.Context) Result { return checkECR(ctx, cfg, h, d.o.Timeout/2) })}
		})
	}
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "proxy", shownURL(o.ProxyURL), func(ctx context.Context) Result { return checkProxy(ctx, o.HTTPClient, o.ProxyURL) })}
	})
	add(func(ctx context.Context) []Result {
		return []Result{d.check(ctx, "authz", "", func(ctx context.Context) Result { return checkAuthz(ctx, cfg, o.DockerHost) })}
	})
	results := make([][]Result, len(checks))
	var wg sync.WaitGroup
	for i, f := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f(ctx)
		}()
	}
	wg.Wait()

	rep := Report{OK: true, Checks: []Result{cfgRes}}
	for _, rs := range results {
		rep.Checks = append(rep.Checks, rs...)
	}
	for _, r := range rep.Checks {
		if r.Status == StatusFail {
			rep.OK = false
		}
	}
	return rep
}

type run struct{ o Options }

// check runs f with the per-check timeout and turns a timeout into a
// failure that says so, whatever f was doing.
func (d *run) check(ctx context.Context, name, target string, f func(ctx context.Context) Result) Result {
	r, _ := d.timed(name, target, func(ctx context.Context) (Result, *config.Config) { return f(ctx), nil })(ctx)
	return r
}

func (d *run) timed(name, target string, f func(ctx context.Context) (Result, *config.Config)) func(ctx context.Context) (Result, *config.Config) {
	return func(ctx context.Context) (Result, *config.Config) {
		// The check sees a deadline a little before the watchdog's, so that
		// it reports its own, more precise, reason for running out of time.
		watch, cancel := context.WithTimeout(ctx, d.o.Timeout)
		defer cancel()
		inner, cancelInner := context.WithTimeout(watch, d.o.Timeout*9/10)
		defer cancelInner()
		ctx = watch
		start := time.Now()
		type out struct {
			r   Result
			cfg *config.Config
		}
		ch := make(chan out, 1)
		go func() {
			r, cfg := f(inner)
			ch <- out{r, cfg}
		}()
		var res out
		select {
		case res = <-ch:
		case <-ctx.Done():
			// f ignores its context somewhere: do not wait for it.
			res.r = Result{Status: StatusFail, Detail: fmt.Sprintf("no answer within %v", d.o.Timeout), Fix: "see what blocks this check (a network path that drops packets, an unresponsive disk)"}
		}
		res.r.Name, res.r.Target, res.r.Took = name, target, time.Since(start)
		return res.r, res.cfg
	}
}

// WriteText prints the report in plain words, one block per check.
func WriteText(w io.Writer, rep Report) {
	for _, r := range rep.Checks {
		label := r.Name
		if r.Target != "" {
			label += " " + r.Target
		}
		mark := map[Status]string{StatusOK: "ok", StatusWarn: "WARN", StatusFail: "FAIL", StatusSkip: "skip"}[r.Status]
		fmt.Fprintf(w, "%-4s  %s: %s\n", mark, label, oneLine(r.Detail))
		if r.Fix != "" {
			fmt.Fprintf(w, "      fix: %s\n", oneLine(r.Fix))
		}
	}
	n := map[Status]int{}
	for _, r := range rep.Checks {
		n[r.Status]++
	}
	verdict := "everything tollgate needs works"
	if !rep.OK {
		verdict = "some checks failed; each says what to do"
	}
	fmt.Fprintf(w, "\ndoctor: %d ok, %d failing, %d warnings, %d skipped: %s\n", n[StatusOK], n[StatusFail], n[StatusWarn], n[StatusSkip], verdict)
}

// WriteJSON prints the report as one JSON object.
func WriteJSON(w io.Writer, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
