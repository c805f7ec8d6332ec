package integration

// End-to-end tests of `tollgate proxy` against upstreams that need
// credentials: a docker-registry with htpasswd whose login lives only in
// SPACELIFT_DOCKER_CONFIG_DIR, and an ECR-like registry whose Basic
// credentials are tokens minted by the wire-level fake ECR.
//
// needs: skopeo docker-registry apache2-utils

import (
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/integration/fakeaws"
	"github.com/spacelift-io/tollgate/integration/harness"
)

const (
	privHost  = "private.test"
	ecrHost   = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	pxUserKey = "AKIAPROXYTEST000001"
	pxUserSec = "proxy/test/secret+00000000000000000000000"
	pxUserARN = "arn:aws:iam::123456789012:user/proxy-test"
)

func TestProxyHtpasswdUpstreamWithConfigDirLogin(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	priv := startUpstream(t, harness.RegistryOptions{Username: "ci", Password: "pw-for-ci"}, harness.RecorderOptions{})
	img := priv.reg.SeedImage(t, "team/secret", "v1", harness.ImageSpec{Layers: 2})
	idx := priv.reg.SeedIndex(t, "team/multi", "v1", harness.ImageSpec{Layers: 1})
	configDir := writeLoginConfigDir(t, map[string][2]string{privHost: {"ci", "pw-for-ci"}})
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{privHost},
		Upstreams: map[string]string{privHost: priv.rec.URL},
	}, "SPACELIFT_DOCKER_CONFIG_DIR="+configDir)
	// The client has no credentials at all: the proxy injects the login.
	sk := harness.NewSkopeo(t)
	pullImage(ctx, t, sk, px.Host+"/"+privHost+"/team/secret:v1", img)
	pullIndex(ctx, t, sk, px.Host+"/"+privHost+"/team/multi:v1", idx)
	basic := 0
	for _, r := range priv.rec.Requests() {
		if r.Authorization == "Basic" {
			basic++
		}
	}
	if basic == 0 {
		t.Error("the upstream never saw the login from the config dir")
	}

	// Without the login, the same proxy setup cannot pull.
	px2 := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{privHost},
		Upstreams: map[string]string{privHost: priv.rec.URL},
	}, "SPACELIFT_DOCKER_CONFIG_DIR="+t.TempDir())
	if _, _, err := sk.Pull(ctx, t, px2.Host+"/"+privHost+"/team/secret:v1", false); err == nil {
		t.Error("pulled a private image through a proxy that has no login for it")
	}
}

func TestProxyECRUpstream(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 3*time.Minute)
	bin := harness.BuildBinaries(t)
	aws := fakeaws.Start(t, fakeaws.Options{})
	aws.AddUser(pxUserKey, pxUserSec, pxUserARN)
	ecr := startUpstream(t, harness.RegistryOptions{}, harness.RecorderOptions{
		Authorize: func(u, p string) bool {
			_, ok := aws.CheckToken(u, p)
			return ok
		},
	})
	img := ecr.reg.SeedImage(t, "team/service", "2024.1", harness.ImageSpec{Layers: 3})
	idx := ecr.reg.SeedIndex(t, "team/multi", "1", harness.ImageSpec{Layers: 1, OCI: true})
	env := append(aws.Env(), aws.UserEnv(pxUserKey)...)
	env = append(env, "SPACELIFT_DOCKER_CONFIG_DIR=")
	px := harness.StartProxy(t, bin, harness.ProxyConfig{
		Allowlist: []string{"<account>.dkr.ecr.<region>.amazonaws.com"},
		Upstreams: map[string]string{ecrHost: ecr.rec.URL},
	}, env...)
	sk := harness.NewSkopeo(t)
	pullImage(ctx, t, sk, px.Host+"/"+ecrHost+"/team/service:2024.1", img)
	pullIndex(ctx, t, sk, px.Host+"/"+ecrHost+"/team/multi:1", idx)
	if n := aws.Calls(fakeaws.APIECRGetAuthorizationToken); n != 1 {
		t.Errorf("GetAuthorizationToken called %d times for two pulls, want 1 (token reused): %s", n, aws)
	}
	authorised := 0
	for _, r := range ecr.rec.Requests() {
		if r.Authorization == "Basic" && r.Status < 400 {
			authorised++
		}
	}
	if authorised == 0 {
		t.Error("the ECR-like upstream accepted no request with a minted token")
	}
}
