package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
)

func TestCheckThatIgnoresItsContextIsCutOff(t *testing.T) {
	d := &run{o: Options{Timeout: 200 * time.Millisecond}}
	block := make(chan struct{})
	defer close(block)
	start := time.Now()
	r := d.check(context.Background(), "stuck", "", func(context.Context) Result {
		<-block // ignores ctx
		return Result{Status: StatusOK}
	})
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("check took %v with a 200ms timeout", took)
	}
	if r.Status != StatusFail || r.Fix == "" || r.Name != "stuck" {
		t.Fatalf("result %+v, want a failure with a fix", r)
	}
}

func TestCheckProxy(t *testing.T) {
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	}))
	defer reg.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer other.Close()
	c := &http.Client{Timeout: time.Second}
	ctx := context.Background()
	if r := checkProxy(ctx, c, reg.URL); r.Status != StatusOK || !strings.Contains(r.Detail, "/v2/ answers 401 as a registry") {
		t.Errorf("registry: %+v", r)
	}
	if r := checkProxy(ctx, c, other.URL); r.Status != StatusFail || !strings.Contains(r.Detail, "500") {
		t.Errorf("500: %+v", r)
	}
	if r := checkProxy(ctx, c, "ftp://x"); r.Status != StatusFail {
		t.Errorf("bad URL: %+v", r)
	}
	if r := checkProxy(ctx, c, ""); r.Status != StatusSkip {
		t.Errorf("no URL: %+v", r)
	}
}

func TestCheckConfigDirCountsLoginsWithoutPrintingThem(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	secret := "c2VjcmV0OnBhc3N3b3Jk"
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"ghcr.io":{"auth":"`+secret+`"}}}`), 0o600)
	r := checkConfigDir(dir)
	if r.Status != StatusOK || !strings.Contains(r.Detail, "1 logins") || strings.Contains(r.Detail, secret) {
		t.Errorf("%+v", r)
	}
	if r := checkConfigDir(filepath.Join(dir, "missing")); r.Status != StatusFail || !strings.Contains(r.Fix, "install -d -m 0700") {
		t.Errorf("missing: %+v", r)
	}
}

// A relative config dir fails, saying so, even when it names a usable
// directory from where the doctor happens to run.
func TestCheckConfigDirRefusesARelativePath(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "docker"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	r := checkConfigDir("docker")
	if r.Status != StatusFail || !strings.Contains(r.Detail, "relative path") || !strings.Contains(r.Fix, "absolute") {
		t.Errorf("%+v", r)
	}
}

func TestWriteTextAndJSON(t *testing.T) {
	rep := Report{OK: false, Checks: []Result{
		{Name: "imds", Status: StatusFail, Detail: "no\n  answer", Fix: "set the hop limit"},
		{Name: "ecr", Target: "public.ecr.aws", Status: StatusOK, Detail: "works"},
	}}
	var b bytes.Buffer
	WriteText(&b, rep)
	want := "FAIL  imds: no answer\n      fix: set the hop limit\nok    ecr public.ecr.aws: works\n"
	if !strings.HasPrefix(b.String(), want) || !strings.Contains(b.String(), "1 ok, 1 failing") {
		t.Errorf("text:\n%s", b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.OK || len(back.Checks) != 2 || back.Checks[1].Target != "public.ecr.aws" {
		t.Errorf("json round trip: %+v %v", back, err)
	}
}

// A --proxy URL may carry a login (a proxy behind an authenticating front):
// its password is never printed, in the check's target or its detail,
// whether the proxy answers or not.
func TestProxyURLPasswordIsNotPrinted(t *testing.T) {
	fakeaws.ClearEnv(t)
	// No AWS anywhere: the AWS checks find nothing and call nothing.
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("PATH", t.TempDir())
	const password = "s3cr3t-pw"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		http.NotFound(w, r)
	}))
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // refuses connections from now on
	for _, base := range []string{up.URL, down.URL, down.URL + "/%zz"} {
		withLogin := strings.Replace(base, "http://", "http://tollgate:"+password+"@", 1)
		rep := Run(context.Background(), Options{ProxyURL: withLogin, Timeout: 2 * time.Second})
		var text, js bytes.Buffer
		WriteText(&text, rep)
		if err := WriteJSON(&js, rep); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(text.String()+js.String(), password) {
			t.Errorf("--proxy %s: the password is printed:\n%s", base, text.String())
		}
		if !strings.Contains(text.String(), "proxy ") {
			t.Errorf("--proxy %s: no proxy check in the report:\n%s", base, text.String())
		}
	}
}
