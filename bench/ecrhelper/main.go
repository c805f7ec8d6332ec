// Command ecrhelper benchmarks docker credential helpers for ECR hosts
// against the wire-level fake AWS endpoints of integration/fakeaws: the
// whole-process latency of a warm `get` (median over -n runs) and the AWS
// API calls made by -concurrency cold `get`s started at once.
//
// It is run by bench/ecr-helper.sh, which builds the helpers first:
//
//	go run ./bench/ecrhelper -helper tollgate=/path/docker-credential-tollgate \
//	    -helper ecr-login=/path/docker-credential-ecr-login
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

type helper struct{ name, path string }

type helpers []helper

func (h *helpers) String() string { return fmt.Sprint(*h) }
func (h *helpers) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" {
		return fmt.Errorf("want NAME=PATH, got %q", v)
	}
	*h = append(*h, helper{name, path})
	return nil
}

const (
	userKey    = "AKIABENCHUSER000001"
	userSecret = "bench/secret+000000000000000000000000000"
	userARN    = "arn:aws:iam::123456789012:user/bench"
	roleARN    = "arn:aws:iam::123456789012:role/ci-worker"
	host       = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
)

func main() {
	var hs helpers
	flag.Var(&hs, "helper", "NAME=PATH of a docker credential helper to measure (repeatable)")
	runs := flag.Int("n", 100, "warm gets per helper and credential source")
	conc := flag.Int("concurrency", 50, "cold gets started at once")
	flag.Parse()
	if len(hs) == 0 {
		fmt.Fprintln(os.Stderr, "ecrhelper: give at least one -helper NAME=PATH")
		os.Exit(2)
	}
	if err := run(hs, *runs, *conc); err != nil {
		fmt.Fprintln(os.Stderr, "ecrhelper:", err)
		os.Exit(1)
	}
}

// source is a way for the helper to find AWS credentials.
type source struct {
	name string
	env  func(s *fakeaws.Server) []string
}

var sources = []source{
	{"instance role (IMDSv2)", func(*fakeaws.Server) []string { return nil }},
	{"static keys (env)", func(s *fakeaws.Server) []string { return s.UserEnv(userKey) }},
}

func run(hs helpers, runs, conc int) error {
	s, err := fakeaws.New(fakeaws.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	s.AddUser(userKey, userSecret, userARN)
	s.SetInstanceRole("ci-worker", roleARN)

	floor, err := measure("/bin/true", nil, runs, false)
	if err != nil {
		return err
	}
	fmt.Printf("Warm `get`, whole process, %d runs each (ms):\n\n", runs)
	fmt.Println("| helper | credentials | median | p90 | min | AWS calls per warm get |")
	fmt.Println("|---|---|---|---|---|---|")
	fmt.Printf("| /bin/true (exec floor) | - | %s | %s | %s | - |\n", ms(floor.median), ms(floor.p90), ms(floor.min))
	for _, src := range sources {
		for _, h := range hs {
			home, err := os.MkdirTemp("", "ecrhelper-home-")
			if err != nil {
				return err
			}
			env := environ(s, home, src.env(s))
			if _, err := measure(h.path, env, 1, true); err != nil { // cold: fills the cache
				return fmt.Errorf("%s, %s: cold get: %w", h.name, src.name, err)
			}
			s.ResetCalls()
			st, err := measure(h.path, env, runs, true)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", h.name, src.name, err)
			}
			calls := float64(s.Calls("")) / float64(runs)
			fmt.Printf("| %s | %s | %s | %s | %s | %.1f (%s) |\n", h.name, src.name, ms(st.median), ms(st.p90), ms(st.min), calls, counts(s))
			_ = os.RemoveAll(home)
		}
	}

	fmt.Printf("\n%d concurrent cold `get`s, one host, fresh cache (API calls):\n\n", conc)
	fmt.Println("| helper | credentials | ecr.GetAuthorizationToken | sts | imds | failed gets |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, src := range sources {
		for _, h := range hs {
			home, err := os.MkdirTemp("", "ecrhelper-home-")
			if err != nil {
				return err
			}
			env := environ(s, home, src.env(s))
			s.ResetCalls()
			failed := concurrent(h.path, env, conc)
			fmt.Printf("| %s | %s | %d | %d | %d | %d |\n", h.name, src.name,
				s.Calls(fakeaws.APIECRGetAuthorizationToken), s.Calls("sts"), s.Calls("imds"), failed)
			_ = os.RemoveAll(home)
		}
	}
	return nil
}

// environ is a clean environment for a helper: no host AWS or docker
// settings, the fake's endpoints, a private HOME and caches.
func environ(s *fakeaws.Server, home string, extra []string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"TOLLGATE_CACHE_DIR=" + filepath.Join(home, "tollgate-cache"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
	}
	env = append(env, s.Env()...)
	return append(env, extra...)
}

type stats struct{ median, p90, min time.Duration }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }

func counts(s *fakeaws.Server) string {
	str := strings.TrimSuffix(strings.TrimPrefix(s.String(), "fakeaws calls{"), "}")
	if str == "" {
		return "none"
	}
	return str
}

// measure runs bin (with "get" when get is set) n times in sequence and
// returns the wall-clock distribution of whole-process runs.
func measure(bin string, env []string, n int, get bool) (stats, error) {
	var d []time.Duration
	for range n {
		var args []string
		if get {
			args = []string{"get"}
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.Stdin = strings.NewReader(host + "\n")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		err := cmd.Run()
		d = append(d, time.Since(start))
		if err != nil {
			return stats{}, fmt.Errorf("%s: %v: %s %s", bin, err, strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()))
		}
		if get {
			var c struct{ Username, Secret string }
			if err := json.Unmarshal(out.Bytes(), &c); err != nil || c.Username != "AWS" || c.Secret == "" {
				return stats{}, fmt.Errorf("%s get: unexpected output (%v)", bin, err)
			}
		}
	}
	slices.Sort(d)
	return stats{median: d[len(d)/2], p90: d[len(d)*9/10], min: d[0]}, nil
}

// concurrent starts n gets at once and returns how many failed.
func concurrent(bin string, env []string, n int) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "get")
			cmd.Env = env
			cmd.Stdin = strings.NewReader(host + "\n")
			<-start
			if out, err := cmd.Output(); err != nil || !bytes.Contains(out, []byte(`"Secret"`)) {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	return failed
}
