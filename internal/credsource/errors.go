package credsource

import "errors"

// ErrNotFound means a source has no credentials for the registry. Wrap it
// with %w to add why; test for it with IsNotFound, which also recognises
// other sources' not-found errors.
var ErrNotFound error = notFound{}

// notFound is ErrNotFound's type, marked with NotFound().
type notFound struct{}

func (notFound) Error() string { return "credentials not found" }

// NotFound marks the error as "no credentials for this registry".
func (notFound) NotFound() {}

// notFoundMarker is what IsNotFound looks for.
type notFoundMarker interface{ NotFound() }

var _ notFoundMarker = notFound{}

// IsNotFound reports whether err, or an error it wraps, says the source has
// no credentials for the registry (it has a NotFound() method).
func IsNotFound(err error) bool {
	var m notFoundMarker
	return errors.As(err, &m)
}

// temporaryMarker is what IsTemporary looks for.
type temporaryMarker interface{ Temporary() bool }

// IsTemporary reports whether err says it will pass on its own: the first
// error in its chain with a Temporary() method decides.
func IsTemporary(err error) bool {
	var t temporaryMarker
	return errors.As(err, &t) && t.Temporary()
}
