package testwait

import (
	"errors"
	"testing"
	"time"
)

// pollInterval is how often a condition is asked again.
const pollInterval = 5 * time.Millisecond

// Eventually calls cond until it returns nil, and fails t (with cond's last
// error) if that has not happened within timeout. It always asks cond at
// least once, and once more after the deadline, so a slow machine that
// wakes late is not read as a failure.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := wait(timeout, cond); err != nil {
		t.Fatalf("not true after %v: %v", timeout, err)
	}
}

// True is Eventually for a condition with nothing to say but yes or no;
// what names the condition in the failure message.
func True(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New(what)
	})
}

func wait(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(pollInterval)
	}
}
