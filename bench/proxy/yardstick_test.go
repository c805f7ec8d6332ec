package proxybench

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/harness"
	"github.com/spacelift-io/tollgate/internal/testwait"
)

// A yardstick runs in a process of its own, as the proxies it is compared
// with do: this test binary started again with these variables set serves
// the image in the directory and does nothing else.
const (
	yardstickSenderEnv = "PROXYBENCH_YARDSTICK_SENDER" // sendfile or write
	yardstickDirEnv    = "PROXYBENCH_YARDSTICK_DIR"    // what CopyImage wrote
	yardstickAddrEnv   = "PROXYBENCH_YARDSTICK_ADDR"   // file to write the listening address to
)

func TestMain(m *testing.M) {
	if sender := os.Getenv(yardstickSenderEnv); sender != "" {
		err := serveYardstick(sender, os.Getenv(yardstickDirEnv), os.Getenv(yardstickAddrEnv))
		fmt.Fprintln(os.Stderr, "yardstick:", err)
		os.Exit(1)
	}
	code := m.Run()
	harness.RemoveBinaries()
	os.Exit(code)
}

// serveYardstick serves until the process is stopped.
func serveYardstick(sender, dir, addrFile string) error {
	s, err := ParseSender(sender)
	if err != nil {
		return err
	}
	img, err := LoadStaticImage(dir)
	if err != nil {
		return err
	}
	h, err := img.Handler(s)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	tmp := addrFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(ln.Addr().String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, addrFile); err != nil {
		return err
	}
	return http.Serve(ln, h)
}

// yardstick is a running yardstick process.
type yardstick struct {
	URL     string
	Process *harness.Process
}

// startYardstick starts a yardstick serving img the way s says, and waits
// until it answers; it is stopped when t ends.
func startYardstick(t testing.TB, img *StaticImage, s Sender) *yardstick {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), yardstickSenderEnv+"="+s.String(), yardstickDirEnv+"="+img.Dir(), yardstickAddrEnv+"="+addrFile)
	p := harness.StartProcess(t, "yardstick-"+s.String(), dir, cmd)
	y := &yardstick{Process: p}
	testwait.Eventually(t, 30*time.Second, func() error {
		if p.Exited() {
			_, stderr := p.Output()
			return fmt.Errorf("yardstick %s exited: %v: %s", s, p.Err(), strings.TrimSpace(stderr))
		}
		addr, err := os.ReadFile(addrFile)
		if err != nil {
			return err
		}
		y.URL = "http://" + string(addr)
		resp, err := http.Get(y.URL + "/v2/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New("GET /v2/: " + resp.Status)
		}
		return nil
	})
	return y
}
