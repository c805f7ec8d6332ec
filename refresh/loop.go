package refresh

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// LoopOptions tunes Loop. The zero value of each field has a default.
type LoopOptions struct {
	// Margin is the token engine's refresh margin: a token is due once it
	// has less than this left (default 1h).
	Margin time.Duration
	// RetryMin and RetryMax bound the backoff after a failed registry
	// (default 10s and 5m).
	RetryMin, RetryMax time.Duration
	// MaxSleep caps the wait between runs, so ECR logins added to the docker
	// config are picked up (default 15m).
	MaxSleep time.Duration
	// Report, when set, is called after every run.
	Report func(Report, error)
	// Rand returns a float in [0,1) for jitter (default math/rand/v2).
	Rand func() float64
}

func (o *LoopOptions) defaults() {
	if o.Margin <= 0 {
		o.Margin = time.Hour
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 10 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(5*time.Minute, o.RetryMin)
	}
	if o.MaxSleep <= 0 {
		o.MaxSleep = 15 * time.Minute
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
}

// NextRun says when the next run is due after rep, at now. A registry that
// was refreshed is due after its token enters the margin, plus a random
// part of up to half the margin (so a fleet does not refresh in lockstep),
// and always before the token expires. A registry that failed is retried
// after a backoff that doubles with each consecutive failure (failures),
// with jitter.
func NextRun(rep Report, now time.Time, failures int, o LoopOptions) time.Time {
	o.defaults()
	next := now.Add(o.MaxSleep)
	for _, res := range rep.Results {
		var due time.Time
		if res.Err != nil || rep.WriteErr != nil {
			backoff := o.RetryMin << min(max(failures-1, 0), 20)
			if backoff > o.RetryMax || backoff <= 0 {
				backoff = o.RetryMax
			}
			due = now.Add(backoff/2 + time.Duration(o.Rand()*float64(backoff/2)))
		} else {
			left := res.ExpiresAt.Sub(now)
			due = res.ExpiresAt.Add(-o.Margin).Add(time.Duration(o.Rand() * float64(o.Margin/2)))
			// Never later than halfway through what is left, never sooner
			// than a tenth of it: a token shorter than the margin is
			// refreshed at about half its life, not in a tight loop.
			if latest := now.Add(left / 2); left < o.Margin || due.After(res.ExpiresAt) {
				due = latest
			}
			if earliest := now.Add(max(left/10, time.Second)); due.Before(earliest) {
				due = earliest
			}
		}
		if due.Before(next) {
			next = due
		}
	}
	return next
}

// Loop runs Once, then again whenever NextRun says, until ctx ends (SIGTERM),
// and returns nil then. Each run is logged. A run that finds nothing
// to refresh is retried like a failure.
func (r *Refresher) Loop(ctx context.Context, o LoopOptions) error {
	o.defaults()
	log := r.logger()
	failures := 0
	for {
		started := time.Now()
		rep, err := r.Once(ctx)
		if ctx.Err() != nil {
			log.LogAttrs(ctx, slog.LevelInfo, "refresh loop stopped")
			return nil
		}
		if o.Report != nil {
			o.Report(rep, err)
		}
		if err == nil && rep.OK() {
			failures = 0
		} else {
			failures++
		}
		var next time.Time
		if err != nil {
			// Nothing to refresh, or a source could not be read.
			backoff := min(o.RetryMin<<min(failures-1, 20), o.RetryMax)
			next = time.Now().Add(backoff)
		} else {
			next = NextRun(rep, time.Now(), failures, o)
		}
		attrs := []slog.Attr{
			slog.Int("registries", len(rep.Results)),
			slog.Int("failed", rep.Failed()),
			slog.Duration("took", time.Since(started).Round(time.Millisecond)),
			slog.Time("next_run", next.UTC()),
		}
		level := slog.LevelInfo
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
			level = slog.LevelError
		} else if !rep.OK() {
			level = slog.LevelWarn
		}
		log.LogAttrs(ctx, level, "refresh cycle", attrs...)
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			log.LogAttrs(context.Background(), slog.LevelInfo, "refresh loop stopped")
			return nil
		case <-t.C:
		}
	}
}
