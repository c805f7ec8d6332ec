package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// startPlugin serves the handler on a unix socket as the daemon reaches
// it and returns an HTTP client for it.
func startPlugin(t *testing.T, h http.Handler) *http.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

func post(t *testing.T, c *http.Client, path string, body []byte) (int, map[string]any) {
	t.Helper()
	resp, err := c.Post("http://plugin"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestProtocol(t *testing.T) {
	var logs bytes.Buffer
	m := NewMetrics()
	p := mustPolicy(t, Options{Login: true}, "docker.io")
	c := startPlugin(t, NewHandler(p, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), m))

	if code, out := post(t, c, "/Plugin.Activate", nil); code != 200 || out["Implements"].([]any)[0] != "authz" {
		t.Fatalf("Activate: %d %v", code, out)
	}
	allowed := func(body string) (bool, string) {
		_, out := post(t, c, "/AuthZPlugin.AuthZReq", []byte(body))
		msg, _ := out["Msg"].(string)
		return out["Allow"] == true, msg
	}
	if ok, msg := allowed(`{"RequestMethod":"POST","RequestUri":"/v1.41/images/create?fromImage=alpine&tag=3","RequestHeaders":{"Content-Length":"0"}}`); !ok {
		t.Errorf("allowed pull refused: %s", msg)
	}
	if ok, msg := allowed(`{"RequestMethod":"POST","RequestUri":"/v1.41/images/create?fromImage=ghcr.io/x/y","RequestHeaders":{"Content-Length":"0"}}`); ok || !strings.Contains(msg, `"allowlist"`) || !strings.Contains(msg, `add "ghcr.io"`) {
		t.Errorf("denied pull: allowed=%v msg=%q", ok, msg)
	}
	// The engine passes docker login's body, password included: it must not
	// reach the logs.
	login, _ := json.Marshal(Request{RequestMethod: "POST", RequestURI: "/v1.41/auth", RequestBody: []byte(`{"username":"u","password":"hunter2-very-secret"}`)})
	if ok, _ := allowed(string(login)); !ok {
		t.Error("login refused in private mode with the login gate open")
	}
	for _, bad := range []string{`{`, `[]`, `{"RequestMethod":1}`, `null`, ``} {
		if ok, msg := allowed(bad); ok || msg == "" {
			t.Errorf("malformed request %q: allowed=%v msg=%q", bad, ok, msg)
		}
	}
	huge := `{"RequestMethod":"POST","RequestUri":"/x","RequestBody":"` + strings.Repeat("A", maxRequestSize) + `"}`
	if ok, msg := allowed(huge); ok || !strings.Contains(msg, "larger than") {
		t.Errorf("huge request: allowed=%v msg=%q", ok, msg)
	}
	// Responses are always allowed, however large.
	if _, out := post(t, c, "/AuthZPlugin.AuthZRes", []byte(`{"ResponseBody":"`+strings.Repeat("A", 8<<20)+`"}`)); out["Allow"] != true {
		t.Errorf("AuthZRes: %v", out)
	}
	if strings.Contains(logs.String(), "hunter2") {
		t.Errorf("the login password reached the log:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"authz deny"`) {
		t.Errorf("no refusal logged:\n%s", logs.String())
	}
	if n := testutil.ToFloat64(m.denials.WithLabelValues(RuleAllowlist)); n != 1 {
		t.Errorf("allowlist denials counted: %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.denials.WithLabelValues(RuleRequest)); n != 6 {
		t.Errorf("malformed requests counted: %v, want 6", n)
	}
}

func TestListenRefusesALiveSocketAndReplacesAStaleOne(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Errorf("second Listen on a live socket: %v", err)
	}
	// A stale socket: the file stays but nobody listens.
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	l.Close()
	l2, err := Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
}

// TestProtocolLargestEngineBody: newer engines (Docker 29) pass a JSON body
// of up to 4 MiB to plugins, where 20.10 passed at most 1 MiB. Base64 in
// the AuthZReq makes 4 MiB over 5.3 MB: the plugin decides such a request
// on its image, like any other, instead of refusing it for its size.
func TestProtocolLargestEngineBody(t *testing.T) {
	p := mustPolicy(t, Options{}, "127.0.0.1:5999/team/app")
	c := startPlugin(t, NewHandler(p, slog.New(slog.DiscardHandler), NewMetrics()))
	for _, img := range []string{"127.0.0.1:5999/team/app:v1", "127.0.0.1:5999/team/other:v1"} {
		head, tail := `{"Image":"`+img+`","Labels":{"pad":"`, `"}}`
		body := head + strings.Repeat("a", 4<<20-len(head)-len(tail)) + tail
		req, err := json.Marshal(Request{
			RequestMethod: "POST",
			RequestURI:    "/v1.50/containers/create",
			RequestBody:   []byte(body),
			RequestHeaders: map[string]string{
				"Content-Length": strconv.Itoa(len(body)),
				"Content-Type":   "application/json",
				"User-Agent":     "Docker-Client/28.2.2 (linux)",
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		_, out := post(t, c, "/AuthZPlugin.AuthZReq", req)
		msg, _ := out["Msg"].(string)
		want := strings.HasSuffix(img, "/app:v1")
		if out["Allow"] != want || (!want && !strings.Contains(msg, `"allowlist"`)) {
			t.Errorf("container create of %s with a 4 MiB body (AuthZReq %d bytes): allow=%v %q; want allow=%v, decided by the allowlist", img, len(req), out["Allow"], msg, want)
		}
	}
}
