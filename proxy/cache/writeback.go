package cache

// writeback starts the kernel's writeback of a fill's temp file every
// writebackChunk bytes, without waiting for it, so that the fsync before the
// commit finds little left to write: readers of a fill get its last byte
// only after that fsync, and an fsync of a whole layer at the end costs
// tens of milliseconds per blob. It is Linux's sync_file_range; elsewhere
// (a developer's macOS running the proxy) the final fsync does all the work.
type writeback struct {
	fd     int
	synced int64
}

const writebackChunk = 8 << 20

func (w *writeback) progress(written int64) {
	if written-w.synced < writebackChunk {
		return
	}
	// Best effort: an error here only means the final fsync does the work.
	_ = startWriteback(w.fd, w.synced, written-w.synced)
	w.synced = written
}
