package lease

import (
	"context"
	"errors"
)

// openS3 is replaced by the S3 engine in the next commit.
func openS3(context.Context, string, map[string]any) (Store, error) {
	_ = Lease{}.etag
	return nil, errors.New("lease: the s3 engine is not built yet: name a Redis, lease: redis://HOST:6379/0")
}
