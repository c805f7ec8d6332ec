package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/internal/testwait"
)

func TestAuthzUsageErrors(t *testing.T) {
	t.Setenv("TOLLGATE_CONFIG", "")
	if code, _, errOut := runTollgate(t, "authz", "extra"); code != 2 || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("extra argument: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runTollgate(t, "authz", "--socket", "/tmp/x"); code != 2 || !strings.Contains(errOut, "must end in .sock") {
		t.Errorf("socket without .sock: exit %d, %q", code, errOut)
	}
	cfg := writeConfig(t, "authz:\n  build: sometimes\n")
	if code, _, errOut := runTollgate(t, "authz", "--config", cfg); code != 2 || !strings.Contains(errOut, `build "sometimes" is not valid`) {
		t.Errorf("bad config: exit %d, %q", code, errOut)
	}
	cfg = writeConfig(t, "mode: public\nproxy:\n  listen: 127.0.0.1:0\n")
	if code, _, errOut := runTollgate(t, "authz", "--config", cfg, "--socket", filepath.Join(t.TempDir(), "p.sock")); code != 2 || !strings.Contains(errOut, "set authz.proxy") {
		t.Errorf("public mode without a proxy address: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runTollgate(t, "authz", "-h"); code != 0 || !strings.Contains(errOut, "--socket") {
		t.Errorf("-h: exit %d, %q", code, errOut)
	}
}

// TestAuthzServes runs the command on a temporary socket, asks it as the
// daemon would, and stops it: the socket is gone afterwards.
func TestAuthzServes(t *testing.T) {
	t.Setenv("TOLLGATE_CONFIG", "")
	sock := filepath.Join(t.TempDir(), "tollgate.sock")
	cfg := writeConfig(t, "allowlist:\n  - docker.io\nlog:\n  level: warn\n")
	ctx, cancel := context.WithCancel(context.Background())
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- dispatch(ctx, []string{"authz", "--config", cfg, "--socket", sock}, &bytes.Buffer{}, &errb)
	}()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	var out struct {
		Allow bool
		Msg   string
	}
	testwait.Eventually(t, 10*time.Second, func() error {
		resp, err := c.Post("http://plugin/AuthZPlugin.AuthZReq", "application/json",
			strings.NewReader(`{"RequestMethod":"POST","RequestUri":"/v1.41/images/create?fromImage=quay.io/x/y&tag=1","RequestHeaders":{"Content-Length":"0"}}`))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&out)
	})
	if out.Allow || !strings.Contains(out.Msg, `add "quay.io"`) {
		t.Errorf("pull from quay.io with allowlist [docker.io]: %+v", out)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tollgate authz did not stop")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after stop: %v", err)
	}
	if !strings.Contains(errb.String(), "authz deny") {
		t.Errorf("the refusal was not logged: %s", errb.String())
	}
}
