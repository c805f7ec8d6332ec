// Package oneline makes text that may come from a request (a reference, a
// host, a JSON field) safe to put into a message: at most one short line,
// with anything that is not printable escaped. The allowlist's denial
// reasons and the authz plugin's refusals use it, so that a hostile name
// can neither forge log lines nor swell a message.
package oneline
