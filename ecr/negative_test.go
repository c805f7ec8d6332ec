package ecr

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/spacelift-io/tollgate/ecr/ecrhost"
	"github.com/spacelift-io/tollgate/ecr/tokencache"
)

// A FIFO in place of a remembered ECR Public failure must not hang every
// helper process that pulls from ECR Public: it is ignored.
func TestReadNegativeDoesNotBlockOnFIFO(t *testing.T) {
	d := &tokencache.Disk{Dir: filepath.Join(t.TempDir(), "ecr")}
	if _, err := d.EnsureDir(); err != nil {
		t.Fatal(err)
	}
	reg, err := ecrhost.Parse("public.ecr.aws")
	if err != nil {
		t.Fatal(err)
	}
	sc := tokencache.ScopeOf(reg, tokencache.Source{Key: "env-keys:AKIA1"})
	if err := syscall.Mkfifo(negativePath(d, sc), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan *Error, 1)
	go func() { done <- readNegative(d, sc, time.Now()) }()
	select {
	case te := <-done:
		if te != nil {
			t.Fatalf("a FIFO was read as a remembered failure: %v", te)
		}
	case <-time.After(5 * time.Second):
		if f, err := os.OpenFile(negativePath(d, sc), os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("readNegative blocked on a FIFO")
	}
}
