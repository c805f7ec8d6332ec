package harness

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// TestSeaweedFSConditionalWrites pins down the S3 conditional-write
// behaviour that proxy/fleet/lease relies on, on the real server the tests
// use: If-None-Match: * creates once (412 after), If-Match with a stale
// ETag is refused (412), with the current ETag it replaces the object.
func TestSeaweedFSConditionalWrites(t *testing.T) {
	o := StartSeaweedFS(t)
	c := o.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	put := func(key, body string, ifNoneMatch, ifMatch string) (string, error) {
		in := &s3.PutObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(key), Body: strings.NewReader(body)}
		if ifNoneMatch != "" {
			in.IfNoneMatch = aws.String(ifNoneMatch)
		}
		if ifMatch != "" {
			in.IfMatch = aws.String(ifMatch)
		}
		out, err := c.PutObject(ctx, in)
		if err != nil {
			return "", err
		}
		return aws.ToString(out.ETag), nil
	}

	etag1, err := put("cond/a", "one", "*", "")
	if err != nil {
		t.Fatalf("first If-None-Match PUT: %v", err)
	}
	if _, err := put("cond/a", "two", "*", ""); httpStatus(err) != http.StatusPreconditionFailed {
		t.Fatalf("second If-None-Match PUT: %v (status %d), want 412", err, httpStatus(err))
	}
	etag2, err := put("cond/a", "two", "", etag1)
	if err != nil {
		t.Fatalf("If-Match PUT with the current ETag: %v", err)
	}
	if etag2 == etag1 {
		t.Fatalf("ETag unchanged after a write of other content: %s", etag2)
	}
	if _, err := put("cond/a", "three", "", etag1); httpStatus(err) != http.StatusPreconditionFailed {
		t.Fatalf("If-Match PUT with a stale ETag: %v (status %d), want 412", err, httpStatus(err))
	}
	if _, err := put("cond/missing", "x", "", etag2); err == nil {
		t.Fatal("If-Match PUT on a missing key succeeded")
	} else {
		t.Logf("If-Match PUT on a missing key: status %d", httpStatus(err))
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String("cond/a")})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	if aws.ToString(got.ETag) != etag2 {
		t.Errorf("GET ETag %s, want the last write's %s", aws.ToString(got.ETag), etag2)
	}
	if got.LastModified == nil {
		t.Error("GET without Last-Modified")
	}
}
