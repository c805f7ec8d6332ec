package dockerconfig

import (
	"fmt"
	"sync"

	"github.com/spacelift-io/tollgate/internal/securefile"
)

// warned remembers the paths already warned about, so each exposure is
// reported once per process however many lookups it serves.
var warned sync.Map

// checkPermissions warns (once per path per process) when the config
// directory, or the config file if it exists, can be read by users other
// than its owner.
func (s *Store) checkPermissions(fileExists bool) {
	type target struct{ path, what, fix string }
	paths := []target{{s.Dir, "directory", "chmod 700"}}
	if fileExists {
		paths = append(paths, target{s.Path(), "file", "chmod 600"})
	}
	for _, p := range paths {
		exposed, mode, err := securefile.CheckPrivate(p.path)
		if err != nil || !exposed {
			continue
		}
		if _, dup := warned.LoadOrStore(p.path, true); dup {
			continue
		}
		fmt.Fprintf(s.warnings(), "tollgate: warning: registry logins %s %s has mode %04o, open to other users; run: %s %s\n", p.what, p.path, mode, p.fix, p.path)
	}
}
