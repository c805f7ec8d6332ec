package lease

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisStore keeps leases in Redis: one key per lease whose value is
// "<token> <holder>" and whose expiry is the lease's.
type redisStore struct {
	client *redis.Client
	prefix string
}

var _ Store = (*redisStore)(nil)

// redisTimeout bounds one dial, read or write when the caller's context has
// no earlier deadline: a lease store is never worth waiting for.
const redisTimeout = 2 * time.Second

func openRedis(spec, namespace string) (*redisStore, error) {
	opts, err := redis.ParseURL(spec)
	if err != nil {
		// go-redis's errors may quote the URL, which may hold a password.
		return nil, fmt.Errorf("lease: invalid Redis URL %q: want redis://[USER:PASSWORD@]HOST:PORT/DB (or rediss:// for TLS)", Redact(spec))
	}
	opts.MaxRetries = -1 // no retry loop: a down Redis must fail fast
	opts.DialTimeout = redisTimeout
	opts.ReadTimeout = redisTimeout
	opts.WriteTimeout = redisTimeout
	opts.ContextTimeoutEnabled = true
	opts.PoolSize = 8
	opts.Protocol = 2           // RESP2: every Redis (and ElastiCache/Valkey) speaks it
	opts.DisableIdentity = true // no CLIENT SETINFO, which older servers refuse
	return &redisStore{
		client: redis.NewClient(opts),
		prefix: "tollgate:lease:" + namespace + ":",
	}, nil
}

// redisAcquire sets the key if absent; otherwise it returns the current
// value and its remaining time, read in the same atomic step.
var redisAcquire = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, ARGV[1], tonumber(ARGV[2])}
end
return {0, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}
`)

// redisRenew extends the key only if it still holds our value.
var redisRenew = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`)

// redisRelease deletes the key only if it still holds our value.
var redisRelease = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

func (s *redisStore) Acquire(ctx context.Context, key, holder string, ttl time.Duration) (Lease, error) {
	if err := validAcquire(key, holder, ttl); err != nil {
		return Lease{}, err
	}
	token := newToken()
	start := time.Now()
	res, err := redisAcquire.Run(ctx, s.client, []string{s.prefix + key}, token+" "+holder, ttl.Milliseconds()).Slice()
	if err != nil {
		return Lease{}, fmt.Errorf("lease: redis: acquiring %s: %w", key, err)
	}
	if len(res) != 3 {
		return Lease{}, fmt.Errorf("lease: redis: acquiring %s: unexpected reply %v", key, res)
	}
	won, _ := res[0].(int64)
	value, _ := res[1].(string)
	pttl, _ := res[2].(int64)
	if won == 1 {
		return Lease{Key: key, Holder: holder, Expires: start.Add(ttl), token: token}, nil
	}
	_, theirs, ok := strings.Cut(value, " ")
	if !ok || pttl < 0 {
		// Not a lease of ours (someone else's key under our prefix), or
		// one without expiry: never wait on it.
		return Lease{}, fmt.Errorf("lease: redis: key %s%s holds no tollgate lease (value without expiry or of another format): delete it", s.prefix, key)
	}
	return Lease{Key: key, Holder: theirs, Expires: time.Now().Add(time.Duration(pttl) * time.Millisecond)}, ErrHeld
}

func (s *redisStore) Renew(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	if err := validTTL(ttl); err != nil {
		return l, err
	}
	if l.token == "" {
		return l, fmt.Errorf("lease: renewing %s: not a lease this store acquired", l.Key)
	}
	start := time.Now()
	n, err := redisRenew.Run(ctx, s.client, []string{s.prefix + l.Key}, l.token+" "+l.Holder, ttl.Milliseconds()).Int64()
	if err != nil {
		return l, fmt.Errorf("lease: redis: renewing %s: %w", l.Key, err)
	}
	if n != 1 {
		return l, ErrLost
	}
	l.Expires = start.Add(ttl)
	return l, nil
}

func (s *redisStore) Release(ctx context.Context, l Lease) error {
	if l.token == "" {
		return fmt.Errorf("lease: releasing %s: not a lease this store acquired", l.Key)
	}
	n, err := redisRelease.Run(ctx, s.client, []string{s.prefix + l.Key}, l.token+" "+l.Holder).Int64()
	if err != nil {
		return fmt.Errorf("lease: redis: releasing %s: %w", l.Key, err)
	}
	if n != 1 {
		return ErrLost
	}
	return nil
}

// redisScanCount is the COUNT hint of each SCAN step of List.
const redisScanCount = 256

// List walks the namespace's keys with SCAN (never KEYS, which blocks the
// server while it walks the whole key space) and reads each match's value
// and remaining time in one pipeline per step. Keys expire on Redis's own
// clock, so what it returns has not expired.
func (s *redisStore) List(ctx context.Context, prefix string, max int) ([]Lease, error) {
	if err := validList(prefix, max); err != nil {
		return nil, err
	}
	match := redisGlobEscape(s.prefix+prefix) + "*"
	seen := map[string]bool{} // SCAN may return a key more than once
	var out []Lease
	var cursor uint64
	for {
		keys, next, err := s.client.Scan(ctx, cursor, match, redisScanCount).Result()
		if err != nil {
			return nil, fmt.Errorf("lease: redis: listing %q: %w", prefix, err)
		}
		var fresh []string
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				fresh = append(fresh, k)
			}
		}
		if len(fresh) > 0 {
			ls, err := s.read(ctx, fresh)
			if err != nil {
				return nil, fmt.Errorf("lease: redis: listing %q: %w", prefix, err)
			}
			for _, l := range ls {
				if len(out) == max {
					break
				}
				out = append(out, l)
			}
		}
		cursor = next
		if cursor == 0 || len(out) == max {
			return sortLeases(out), nil
		}
	}
}

// read GETs keys and their remaining time in one round trip; keys that
// expired meanwhile and values that are not leases are left out.
func (s *redisStore) read(ctx context.Context, keys []string) ([]Lease, error) {
	type pair struct {
		value *redis.StringCmd
		pttl  *redis.DurationCmd
	}
	cmds := make([]pair, len(keys))
	start := time.Now()
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = pair{p.Get(ctx, k), p.PTTL(ctx, k)}
		}
		return nil
	})
	var reply redis.Error
	if err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &reply) {
		return nil, err // the connection, not one key's reply
	}
	var out []Lease
	for i, k := range keys {
		value, err := cmds[i].value.Result()
		if err != nil {
			continue // gone meanwhile (redis.Nil), or not a string
		}
		pttl, err := cmds[i].pttl.Result()
		if err != nil || pttl <= 0 {
			continue // gone meanwhile, or without expiry: not a lease
		}
		_, holder, ok := strings.Cut(value, " ")
		if !ok || validHolder(holder) != nil {
			continue
		}
		out = append(out, Lease{Key: strings.TrimPrefix(k, s.prefix), Holder: holder, Expires: start.Add(pttl)})
	}
	return out, nil
}

// redisGlobEscape quotes the characters SCAN's MATCH treats as a pattern.
func redisGlobEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (s *redisStore) Close() error {
	if err := s.client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("lease: redis: %w", err)
	}
	return nil
}

// redactURL drops the userinfo (which may carry a password) from a URL for
// messages; what cannot be parsed is replaced whole.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
