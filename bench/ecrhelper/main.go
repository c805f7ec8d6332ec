package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

type helper struct{ name, path string }

type helpers []helper

func (h *helpers) String() string { return fmt.Sprint(*h) }
func (h *helpers) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok || name == "" || path == "" || strings.ContainsAny(name, "/ \t") {
		return fmt.Errorf("want NAME=PATH with a NAME without '/' or spaces, got %q", v)
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
	rounds := flag.Int("rounds", 5, "rounds of concurrent cold gets (0: none)")
	benchfmt := flag.Bool("benchfmt", false, "also print the warm medians as Go benchmark lines (BenchmarkHelperWarmGet/SOURCE/HELPER), for bench/benchtable")
	flag.Parse()
	if len(hs) == 0 {
		fmt.Fprintln(os.Stderr, "ecrhelper: give at least one -helper NAME=PATH")
		os.Exit(2)
	}
	if err := run(hs, *runs, *conc, *rounds, *benchfmt); err != nil {
		fmt.Fprintln(os.Stderr, "ecrhelper:", err)
		os.Exit(1)
	}
}

// source is a way for the helper to find AWS credentials.
type source struct {
	name, slug string // slug: its name in benchmark lines
	env        func(s *fakeaws.Server) []string
}

var sources = []source{
	{"instance role (IMDSv2)", "instance-role", func(*fakeaws.Server) []string { return nil }},
	{"static keys (env)", "static-keys", func(s *fakeaws.Server) []string { return s.UserEnv(userKey) }},
}

func run(hs helpers, runs, conc, rounds int, benchfmt bool) error {
	s, err := fakeaws.New(fakeaws.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	s.AddUser(userKey, userSecret, userARN)
	s.SetInstanceRole("ci-worker", roleARN)

	// One private HOME per helper and credential source, its cache filled by
	// a cold get; then the warm runs are interleaved round-robin so that load
	// changes on a shared machine hit every helper alike.
	type setup struct {
		h     helper
		src   source
		env   []string
		times []time.Duration
	}
	var setups []*setup
	for _, src := range sources {
		for _, h := range hs {
			home, err := os.MkdirTemp("", "ecrhelper-home-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(home)
			st := &setup{h: h, src: src, env: environ(s, home, src.env(s))}
			if _, err := runOnce(h.path, st.env, true); err != nil {
				return fmt.Errorf("%s, %s: cold get: %w", h.name, src.name, err)
			}
			setups = append(setups, st)
		}
	}
	floor := &setup{h: helper{"/bin/true (exec floor)", "/bin/true"}, src: source{name: "-"}}
	for range runs {
		if d, err := runOnce(floor.h.path, nil, false); err == nil {
			floor.times = append(floor.times, d)
		}
		for _, st := range setups {
			d, err := runOnce(st.h.path, st.env, true)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", st.h.name, st.src.name, err)
			}
			st.times = append(st.times, d)
		}
	}
	fmt.Printf("Warm `get`, whole process, %d runs each, interleaved (ms):\n\n", runs)
	fmt.Println("| helper | credentials | median | p90 | min | AWS calls per warm get |")
	fmt.Println("|---|---|---|---|---|---|")
	fs := summarize(floor.times)
	fmt.Printf("| %s | - | %s | %s | %s | - |\n", floor.h.name, ms(fs.median), ms(fs.p90), ms(fs.min))
	const callRuns = 10
	for _, st := range setups {
		s.ResetCalls()
		for range callRuns {
			if _, err := runOnce(st.h.path, st.env, true); err != nil {
				return fmt.Errorf("%s, %s: %w", st.h.name, st.src.name, err)
			}
		}
		calls := float64(s.Calls("")) / callRuns
		sum := summarize(st.times)
		fmt.Printf("| %s | %s | %s | %s | %s | %.1f (%d runs: %s) |\n", st.h.name, st.src.name,
			ms(sum.median), ms(sum.p90), ms(sum.min), calls, callRuns, counts(s))
	}
	if benchfmt {
		fmt.Println()
		for _, st := range setups {
			sum := summarize(st.times)
			fmt.Printf("BenchmarkHelperWarmGet/%s/%s %d %s median-ms %s p90-ms %s min-ms\n",
				st.src.slug, st.h.name, len(st.times), ms(sum.median), ms(sum.p90), ms(sum.min))
		}
	}
	if rounds <= 0 {
		return nil
	}

	fmt.Printf("\n%d concurrent cold `get`s (all started, then given the host at once), fresh cache each round, %d rounds: API calls per round, min/median/max:\n\n", conc, rounds)
	fmt.Println("| helper | credentials | ecr.GetAuthorizationToken | sts | imds | failed gets (total) |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, src := range sources {
		for _, h := range hs {
			var ecrCalls, stsCalls, imdsCalls []int
			failedTotal := 0
			for range rounds {
				home, err := os.MkdirTemp("", "ecrhelper-home-")
				if err != nil {
					return err
				}
				env := environ(s, home, src.env(s))
				s.ResetCalls()
				failed, err := concurrent(h.path, env, conc)
				_ = os.RemoveAll(home)
				if err != nil {
					return err
				}
				failedTotal += failed
				ecrCalls = append(ecrCalls, s.Calls(fakeaws.APIECRGetAuthorizationToken))
				stsCalls = append(stsCalls, s.Calls("sts"))
				imdsCalls = append(imdsCalls, s.Calls("imds"))
			}
			fmt.Printf("| %s | %s | %s | %s | %s | %d |\n", h.name, src.name, spread(ecrCalls), spread(stsCalls), spread(imdsCalls), failedTotal)
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

// runOnce runs bin (with "get" when get is set) as a whole process and
// returns its wall-clock time; a get must print credentials.
func runOnce(bin string, env []string, get bool) (time.Duration, error) {
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
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("%s: %v: %s %s", bin, err, strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()))
	}
	if get {
		var c struct{ Username, Secret string }
		if err := json.Unmarshal(out.Bytes(), &c); err != nil || c.Username != "AWS" || c.Secret == "" {
			return d, fmt.Errorf("%s get: unexpected output (%v)", bin, err)
		}
	}
	return d, nil
}

// spread renders min/median/max of counts.
func spread(v []int) string {
	slices.Sort(v)
	return fmt.Sprintf("%d / %d / %d", v[0], v[len(v)/2], v[len(v)-1])
}

func summarize(d []time.Duration) stats {
	if len(d) == 0 {
		return stats{}
	}
	slices.Sort(d)
	return stats{median: d[len(d)/2], p90: d[len(d)*9/10], min: d[0]}
}

// concurrent starts n gets, lets them all initialise and block reading
// stdin, then gives every one its host at once; it returns how many failed.
func concurrent(bin string, env []string, n int) (int, error) {
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   bytes.Buffer
	}
	procs := make([]*proc, n)
	for i := range procs {
		p := &proc{cmd: exec.Command(bin, "get")}
		p.cmd.Env = env
		p.cmd.Stdout = &p.out
		stdin, err := p.cmd.StdinPipe()
		if err != nil {
			return 0, err
		}
		p.stdin = stdin
		if err := p.cmd.Start(); err != nil {
			return 0, err
		}
		procs[i] = p
	}
	time.Sleep(200 * time.Millisecond) // every process is past start-up, waiting on stdin
	for _, p := range procs {
		go func() {
			_, _ = io.WriteString(p.stdin, host+"\n")
			_ = p.stdin.Close()
		}()
	}
	failed := 0
	for _, p := range procs {
		if err := p.cmd.Wait(); err != nil || !bytes.Contains(p.out.Bytes(), []byte(`"Secret"`)) {
			failed++
		}
	}
	return failed, nil
}
