package lease

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// s3Store keeps each lease as one small JSON object in the shared tier's
// bucket, under <rootdirectory>/tollgate/leases/v1/<namespace>/<key>.
//
// Every change is a conditional PUT, so exactly one of any number of
// concurrent writers wins it:
//   - create: If-None-Match: * (the first acquirer of a key);
//   - take over an expired or released lease, renew, release: If-Match with
//     the ETag the writer last saw. Each write carries a new random token,
//     so no two writes have the same ETag (no ABA).
//
// Whether a lease has expired is judged on the store's clock: the object's
// Last-Modified (when its last write landed) plus its ttl, against the
// Date of the response that read it, with one second of margin for the
// second-granularity of both headers. Hosts whose clocks disagree still
// agree on expiry. A holder counts its own lease as ending ttl after it
// sent the write, which is never later than the store will.
//
// A released lease is not deleted but overwritten with a released record:
// deleting would let a host that read the old ETag recreate the key from
// scratch beside a new holder (If-None-Match succeeds on a missing key),
// and conditional DELETE is not offered by every S3-compatible store.
// Released records are ~200 bytes, one per blob ever filled; a lifecycle
// rule expiring <rootdirectory>/tollgate/leases/ after a day removes them
// safely (a live lease is rewritten at every renewal, so it is never a day
// old).
type s3Store struct {
	client    *s3.Client
	transport *http.Transport // for Close
	bucket    string
	prefix    string // ends with "/"
}

var _ Store = (*s3Store)(nil)

// s3DialTimeout bounds connecting to the store; each request's total time
// is the caller's context.
const s3DialTimeout = 2 * time.Second

// clockMargin covers the one-second granularity of Last-Modified and Date.
const clockMargin = time.Second

// s3Attempts bounds how often Acquire goes round when the object changes
// under it (another host acquiring or releasing at the same moment).
const s3Attempts = 4

func openS3(ctx context.Context, namespace string, params map[string]any) (*s3Store, error) {
	p := s3Params(params)
	bucket := p.str("bucket")
	if bucket == "" {
		return nil, errors.New("lease: shared tier s3: no bucket parameter: set proxy.shared.parameters.bucket")
	}
	region := p.str("region")
	endpoint := p.str("regionendpoint")
	if region == "" {
		if endpoint == "" {
			return nil, errors.New("lease: shared tier s3: no region parameter: set proxy.shared.parameters.region")
		}
		region = "us-east-1" // S3-compatible stores ignore it, SigV4 needs one
	}
	pathStyle, err := p.boolean("forcepathstyle", false)
	if err != nil {
		return nil, err
	}
	secure, err := p.boolean("secure", true)
	if err != nil {
		return nil, err
	}
	skipVerify, err := p.boolean("skipverify", false)
	if err != nil {
		return nil, err
	}
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		// distribution's s3-aws driver takes a bare host and "secure".
		if secure {
			endpoint = "https://" + endpoint
		} else {
			endpoint = "http://" + endpoint
		}
	}

	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = s3DialTimeout }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConnsPerHost = 8
			if skipVerify {
				if tr.TLSClientConfig == nil {
					tr.TLSClientConfig = &tls.Config{}
				}
				tr.TLSClientConfig.InsecureSkipVerify = true // the operator asked, as for the tier's own driver
			}
		})
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithHTTPClient(httpClient),
		config.WithRetryMaxAttempts(1), // no retry loop: a down store must fail fast
	}
	if ak, sk := p.str("accesskey"), p.str("secretkey"); ak != "" || sk != "" {
		if ak == "" || sk == "" {
			return nil, errors.New("lease: shared tier s3: accesskey and secretkey go together: set both, or neither to use the AWS default credential chain")
		}
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ak, sk, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("lease: shared tier s3: loading AWS configuration: %w", err)
	}
	// Build the HTTP client now (with AWS_CA_BUNDLE and the like applied by
	// LoadDefaultConfig) to keep its transport for Close.
	var transport *http.Transport
	if b, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		frozen := b.Freeze()
		cfg.HTTPClient = frozen
		if hc, ok := frozen.(*http.Client); ok {
			transport, _ = hc.Transport.(*http.Transport)
		}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		// Lease objects are tiny; extra checksums only narrow the set of
		// S3-compatible stores that accept the writes.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	prefix := path.Join(strings.Trim(p.str("rootdirectory"), "/"), "tollgate/leases/v1", namespace) + "/"
	return &s3Store{client: client, transport: transport, bucket: bucket, prefix: prefix}, nil
}

// s3Record is the body of a lease object.
type s3Record struct {
	Holder   string `json:"holder"`
	Token    string `json:"token"`
	TTLMs    int64  `json:"ttl_ms"`
	Released bool   `json:"released,omitempty"`
}

// s3Current is a lease object as read.
type s3Current struct {
	rec       s3Record
	etag      string
	remaining time.Duration // on the store's clock; <= 0: free to take
}

func (s *s3Store) Acquire(ctx context.Context, key, holder string, ttl time.Duration) (Lease, error) {
	if err := validAcquire(key, holder, ttl); err != nil {
		return Lease{}, err
	}
	// Create it; if it exists, read it and take it over when it is free.
	ifMatch := ""
	for attempt := 0; attempt < s3Attempts; attempt++ {
		token := newToken()
		start := time.Now()
		etag, err := s.put(ctx, key, s3Record{Holder: holder, Token: token, TTLMs: ttl.Milliseconds()}, ifMatch)
		if err == nil {
			return Lease{Key: key, Holder: holder, Expires: start.Add(ttl), token: token, etag: etag}, nil
		}
		if !errors.Is(err, errS3Changed) {
			return Lease{}, fmt.Errorf("lease: s3: acquiring %s: %w", key, err)
		}
		cur, err := s.get(ctx, key)
		if errors.Is(err, errS3Missing) {
			ifMatch = "" // gone meanwhile (lifecycle rule): create it again
			continue
		}
		if err != nil {
			return Lease{}, fmt.Errorf("lease: s3: acquiring %s: %w", key, err)
		}
		if cur.remaining > 0 {
			return Lease{Key: key, Holder: cur.rec.Holder, Expires: time.Now().Add(cur.remaining)}, ErrHeld
		}
		ifMatch = cur.etag
	}
	return Lease{}, fmt.Errorf("lease: s3: acquiring %s: the lease object changed under us %d times; giving up this time", key, s3Attempts)
}

func (s *s3Store) Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := validTTL(ttl); err != nil {
		return l, err
	}
	if l.etag == "" {
		return l, fmt.Errorf("lease: renewing %s: not a lease this store acquired", l.Key)
	}
	token := newToken()
	start := time.Now()
	etag, err := s.put(ctx, l.Key, s3Record{Holder: l.Holder, Token: token, TTLMs: ttl.Milliseconds()}, l.etag)
	if errors.Is(err, errS3Changed) || errors.Is(err, errS3Missing) {
		return l, ErrLost
	}
	if err != nil {
		return l, fmt.Errorf("lease: s3: renewing %s: %w", l.Key, err)
	}
	l.token, l.etag, l.Expires = token, etag, start.Add(ttl)
	return l, nil
}

func (s *s3Store) Release(ctx context.Context, l Lease) error {
	if l.etag == "" {
		return fmt.Errorf("lease: releasing %s: not a lease this store acquired", l.Key)
	}
	_, err := s.put(ctx, l.Key, s3Record{Holder: l.Holder, Token: newToken(), Released: true}, l.etag)
	if errors.Is(err, errS3Changed) || errors.Is(err, errS3Missing) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("lease: s3: releasing %s: %w", l.Key, err)
	}
	return nil
}

// s3ListReaders bounds the GETs List runs at once.
const s3ListReaders = 8

// List lists the objects under the namespace's prefix (ListObjectsV2, one
// level: nested namespaces are left out) and reads each one, as Acquire
// does, to judge its expiry on the store's clock. It stops listing once max
// live leases are found.
func (s *s3Store) List(ctx context.Context, prefix string, max int) ([]Lease, error) {
	if err := validList(prefix, max); err != nil {
		return nil, err
	}
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:    aws.String(s.bucket),
		Prefix:    aws.String(s.prefix + prefix),
		Delimiter: aws.String("/"),
	})
	var out []Lease
	for pages.HasMorePages() && len(out) < max {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("lease: s3: listing %q: %w", prefix, err)
		}
		var keys []string
		for _, o := range page.Contents {
			if k := strings.TrimPrefix(aws.ToString(o.Key), s.prefix); validKey(k) == nil {
				keys = append(keys, k)
			}
		}
		ls, err := s.readAll(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("lease: s3: listing %q: %w", prefix, err)
		}
		for _, l := range ls {
			if len(out) == max {
				break
			}
			out = append(out, l)
		}
	}
	return sortLeases(out), nil
}

// readAll GETs the lease objects keys, a few at once, and returns the
// live ones in the order of keys.
func (s *s3Store) readAll(ctx context.Context, keys []string) ([]Lease, error) {
	type result struct {
		l    Lease
		live bool
		err  error
	}
	results := make([]result, len(keys))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(s3ListReaders, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				cur, err := s.get(ctx, keys[i])
				switch {
				case errors.Is(err, errS3Missing), errors.Is(err, errNotLease):
					// Removed meanwhile (lifecycle rule), or not ours.
				case err != nil:
					results[i].err = err
				case !cur.rec.Released && cur.remaining > 0:
					results[i] = result{l: Lease{Key: keys[i], Holder: cur.rec.Holder, Expires: time.Now().Add(cur.remaining)}, live: true}
				}
			}
		}()
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()
	var out []Lease
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		if r.live {
			out = append(out, r.l)
		}
	}
	return out, nil
}

func (s *s3Store) Close() error {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

var (
	// errS3Changed: a conditional write lost (412, or 409 when another
	// conditional write to the key was in flight).
	errS3Changed = errors.New("the lease object changed")
	// errS3Missing: 404.
	errS3Missing = errors.New("no lease object")
)

// put writes rec; ifMatch "" means create only (If-None-Match: *).
// It returns the new ETag.
func (s *s3Store) put(ctx context.Context, key string, rec s3Record, ifMatch string) (string, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.prefix + key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return "", classifyS3(err)
	}
	if out.ETag == nil || *out.ETag == "" {
		return "", errors.New("the store answered a PUT without an ETag, which conditional writes need")
	}
	return *out.ETag, nil
}

// get reads a lease object and judges its expiry on the store's clock.
func (s *s3Store) get(ctx context.Context, key string) (s3Current, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil {
		return s3Current{}, classifyS3(err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(io.LimitReader(out.Body, 4096))
	if err != nil {
		return s3Current{}, fmt.Errorf("reading the lease object: %w", err)
	}
	var cur s3Current
	if err := json.Unmarshal(body, &cur.rec); err != nil || cur.rec.Token == "" {
		return s3Current{}, fmt.Errorf("object %s holds no tollgate lease (%d bytes of something else): delete it: %w", s.prefix+key, len(body), errNotLease)
	}
	if out.ETag == nil || out.LastModified == nil {
		return s3Current{}, errors.New("the store answered a GET without ETag or Last-Modified")
	}
	cur.etag = *out.ETag
	if cur.rec.Released {
		return cur, nil
	}
	now := time.Now()
	if raw, ok := awsmiddleware.GetRawResponse(out.ResultMetadata).(*smithyhttp.Response); ok {
		if d, err := http.ParseTime(raw.Header.Get("Date")); err == nil {
			now = d
		}
	}
	cur.remaining = out.LastModified.Add(time.Duration(cur.rec.TTLMs)*time.Millisecond + clockMargin).Sub(now)
	return cur, nil
}

// classifyS3 maps the HTTP status of a failed request onto errS3Changed and
// errS3Missing, keeping the original error.
func classifyS3(err error) error {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusPreconditionFailed, http.StatusConflict:
			return fmt.Errorf("%w: %w", errS3Changed, err)
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", errS3Missing, err)
		}
	}
	return err
}

// s3Params reads distribution's s3-aws driver parameters as YAML gives
// them (strings, bools, numbers).
type s3Params map[string]any

func (p s3Params) str(name string) string {
	v, ok := p[name]
	if !ok || v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func (p s3Params) boolean(name string, def bool) (bool, error) {
	v, ok := p[name]
	if !ok || v == nil {
		return def, nil
	}
	switch b := v.(type) {
	case bool:
		return b, nil
	case string:
		if parsed, err := strconv.ParseBool(b); err == nil {
			return parsed, nil
		}
	}
	return false, fmt.Errorf("lease: shared tier s3: parameter %s is %v: want true or false", name, v)
}
