// Package dockerconfig reads and edits a docker config.json (auths,
// credHelpers, credsStore) the way docker does, under a lock shared by every
// writer, preserving what it does not understand.
package dockerconfig
