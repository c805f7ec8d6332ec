package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// SeaweedFSVersion is the version of github.com/seaweedfs/seaweedfs whose
// weed the tests run; scripts/install-test-deps.sh builds it (WEED_VERSION
// there must be the same).
const SeaweedFSVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// WeedEnv names a weed binary to use instead of the one
// scripts/install-test-deps.sh builds.
const WeedEnv = "TOLLGATE_WEED"

// WeedBinary is where scripts/install-test-deps.sh puts SeaweedFS's weed:
// $TOLLGATE_WEED, else <user cache dir>/tollgate/weed/<version>/weed.
func WeedBinary() (string, error) {
	if p := os.Getenv(WeedEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "tollgate", "weed", SeaweedFSVersion, "weed"), nil
}

// ObjectStore is a running SeaweedFS (master, volume, filer and S3 gateway
// in one `weed server`) on 127.0.0.1, with one bucket created and one
// identity allowed everything.
type ObjectStore struct {
	// Endpoint is the S3 API's base URL, http://127.0.0.1:PORT.
	Endpoint string
	Region   string
	Bucket   string
	// AccessKey and SecretKey sign requests (SigV4); they are random per
	// store.
	AccessKey, SecretKey string
	Dir                  string
	Process              *Process
}

// StartSeaweedFS starts `weed server -filer -s3` with every port (HTTP and
// gRPC) on free ports of 127.0.0.1, its data in a private temp dir, waits
// until the S3 API answers, and creates a bucket. The test is skipped when
// weed is missing and the test does not run as root; as root (CI) it
// fails, since scripts/install-test-deps.sh builds it.
func StartSeaweedFS(t testing.TB) *ObjectStore {
	t.Helper()
	bin, err := WeedBinary()
	if err != nil {
		t.Fatalf("harness: finding weed: %v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("SeaweedFS's weed is missing (%s): run scripts/install-test-deps.sh, which builds it once, or set %s", bin, WeedEnv)
		if os.Geteuid() != 0 {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	dir := t.TempDir()
	o := &ObjectStore{
		Region:    "us-east-1",
		Bucket:    "tollgate",
		AccessKey: "tg" + randomHex(8),
		SecretKey: randomHex(20),
		Dir:       dir,
	}
	s3cfg := map[string]any{"identities": []any{map[string]any{
		"name":        "tollgate-test",
		"credentials": []any{map[string]string{"accessKey": o.AccessKey, "secretKey": o.SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	b, _ := json.Marshal(s3cfg)
	cfgFile := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		data := filepath.Join(dir, fmt.Sprintf("data%d", attempt))
		if err := os.MkdirAll(data, 0o700); err != nil {
			t.Fatal(err)
		}
		ports := make([]int, 8)
		for i := range ports {
			ports[i] = FreePort(t)
		}
		o.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", ports[6])
		cmd := exec.Command(bin, "server",
			"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-dir="+data,
			fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-master.port.grpc=%d", ports[1]),
			fmt.Sprintf("-volume.port=%d", ports[2]), fmt.Sprintf("-volume.port.grpc=%d", ports[3]),
			"-volume.preStopSeconds=0",
			"-filer", fmt.Sprintf("-filer.port=%d", ports[4]), fmt.Sprintf("-filer.port.grpc=%d", ports[5]),
			"-s3", fmt.Sprintf("-s3.port=%d", ports[6]), fmt.Sprintf("-s3.port.grpc=%d", ports[7]),
			"-s3.port.iceberg=0", "-s3.port.lance=0",
			"-s3.config="+cfgFile,
			"-master.volumeSizeLimitMB=64",
		)
		cmd.Dir = dir
		o.Process = StartProcess(t, fmt.Sprintf("weed-%d", ports[6]), dir, cmd)
		// Its data is throwaway: no need for weed's graceful stop. weed
		// also makes unix sockets named after its ports in /tmp (some at
		// fixed paths there), which a killed weed leaves behind.
		t.Cleanup(func() {
			o.Process.Kill()
			for _, p := range ports {
				socks, _ := filepath.Glob(fmt.Sprintf("/tmp/seaweedfs-*-%d.sock", p))
				for _, s := range socks {
					os.Remove(s)
				}
			}
		})
		err := o.waitReady(60 * time.Second)
		if err == nil {
			return o
		}
		_, stderr := o.Process.Output()
		o.Process.Kill()
		if attempt < 3 && strings.Contains(stderr, "address already in use") {
			continue
		}
		o.Process.LogTail(t, 40)
		t.Fatalf("harness: SeaweedFS did not start: %v", err)
	}
}

// waitReady waits until the S3 API accepts a signed request, then creates
// the bucket (which needs the filer and a volume up).
func (o *ObjectStore) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := o.Client()
	var last error
	created := false
	for time.Now().Before(deadline) {
		if o.Process.Exited() {
			return fmt.Errorf("%s exited: %v", o.Process.Name, o.Process.Err())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if !created {
			_, last = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.Bucket)})
			var owned *types.BucketAlreadyOwnedByYou
			created = last == nil || errors.As(last, &owned)
		}
		if created {
			// The gateway takes writes once the filer has registered
			// with the master, a moment after the bucket exists.
			_, last = client.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(o.Bucket), Key: aws.String("harness/ready"), Body: strings.NewReader("ready"),
			})
		}
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

// Client returns an S3 client for the store (path style, no retries).
func (o *ObjectStore) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:           o.Region,
		BaseEndpoint:     aws.String(o.Endpoint),
		UsePathStyle:     true,
		Credentials:      credentials.NewStaticCredentialsProvider(o.AccessKey, o.SecretKey, ""),
		HTTPClient:       &http.Client{Timeout: 30 * time.Second},
		RetryMaxAttempts: 1,
		// The shared tier's objects are checked by digest; keep requests
		// as plain as the stores we target accept.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// SharedParameters are proxy.shared.parameters for distribution's s3-aws
// driver (and the lease store) pointing at this store's bucket under
// rootdirectory.
func (o *ObjectStore) SharedParameters(rootdirectory string) map[string]any {
	return map[string]any{
		"bucket":         o.Bucket,
		"region":         o.Region,
		"regionendpoint": o.Endpoint,
		"accesskey":      o.AccessKey,
		"secretkey":      o.SecretKey,
		"forcepathstyle": true,
		"secure":         false,
		"rootdirectory":  rootdirectory,
	}
}

// Stop ends weed at once (SIGKILL; its data is throwaway).
func (o *ObjectStore) Stop() { o.Process.Kill() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
