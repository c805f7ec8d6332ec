// Package securefile writes files that hold secrets: 0600 files in 0700
// directories, replaced atomically (temp file in the same directory, fsync,
// rename), and an advisory lock (flock) on a sibling lock file for
// read-modify-write cycles shared by several processes. Run as root in
// another user's directory (a refresher in root's crontab writing the runner
// user's docker config), it gives replaced and new files, lock files and the
// directories it creates to that user, so the user's own tools can still read
// and lock them; it never follows a symlink to a lock file, nor gives away a
// lock file with more than one link.
package securefile
