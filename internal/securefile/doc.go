// Package securefile writes files that hold secrets: 0600 files in 0700
// directories, replaced atomically (temp file in the same directory, fsync,
// rename), and an advisory lock (flock) on a sibling lock file for
// read-modify-write cycles shared by several processes.
package securefile
