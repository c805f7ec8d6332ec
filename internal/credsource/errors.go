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

// NotFoundError is an error that says "no credentials for this registry".
// Error types check they keep the contract with
// var _ credsource.NotFoundError = (*T)(nil).
type NotFoundError interface {
	error
	NotFound()
}

var _ NotFoundError = notFound{}

// IsNotFound reports whether err, or an error it wraps, says the source has
// no credentials for the registry (it has a NotFound() method).
func IsNotFound(err error) bool {
	var nf NotFoundError
	return errors.As(err, &nf)
}

// TemporaryError is an error that says whether it will pass on its own.
type TemporaryError interface {
	error
	Temporary() bool
}

// IsTemporary reports whether err says it will pass on its own: the first
// error in its chain with a Temporary() method decides.
func IsTemporary(err error) bool {
	var t TemporaryError
	return errors.As(err, &t) && t.Temporary()
}
