package testwait

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestWaitReturnsOnceTrue(t *testing.T) {
	var calls atomic.Int32
	err := wait(5*time.Second, func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("wait = %v after %d calls, want nil after 3", err, calls.Load())
	}
}

func TestWaitGivesLastErrorAfterDeadline(t *testing.T) {
	var calls atomic.Int32
	want := errors.New("still false")
	err := wait(20*time.Millisecond, func() error { calls.Add(1); return want })
	if !errors.Is(err, want) {
		t.Fatalf("wait = %v, want %v", err, want)
	}
	if calls.Load() < 2 {
		t.Fatalf("condition asked %d times, want at least twice (before and after the deadline)", calls.Load())
	}
}

func TestWaitAsksOnceEvenWithNoTime(t *testing.T) {
	var calls atomic.Int32
	if err := wait(0, func() error { calls.Add(1); return nil }); err != nil || calls.Load() != 1 {
		t.Fatalf("wait(0) = %v after %d calls", err, calls.Load())
	}
}
