package cache

import "sync/atomic"

// Stats are cumulative counters since Open, plus the current size. The
// proxy exports them (see Collector for a Prometheus collector).
type Stats struct {
	Hits              int64 // readers of committed content (Blob, Fetch)
	Misses            int64 // fills started (one per digest however many callers)
	Joins             int64 // callers that streamed from a fill another caller started
	FillErrors        int64 // fills that did not commit (upstream error, corrupt, truncated, timeout)
	BytesFromUpstream int64 // bytes downloaded from upstreams by fills
	BytesFromShared   int64 // bytes read from the shared tier by fills
	BytesFromCache    int64 // bytes served to readers from committed files
	BytesServed       int64 // bytes served to all readers (committed or streaming)
	Evictions         int64 // entries evicted
	EvictedBytes      int64
	SharedHits        int64 // fills served by the shared tier
	SharedUploads     int64 // blobs uploaded to the shared tier
	SharedErrors      int64 // failed shared-tier uploads

	Entries  int   // committed entries now
	Size     int64 // committed bytes now
	Inflight int   // fills in progress now
}

type counters struct {
	hits, misses, joins, fillErrors                      atomic.Int64
	bytesFromUpstream, bytesFromShared                   atomic.Int64
	bytesFromCache, bytesServed, evictions, evictedBytes atomic.Int64
	sharedHits, sharedUploads, sharedErrors              atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Hits:              c.stats.hits.Load(),
		Misses:            c.stats.misses.Load(),
		Joins:             c.stats.joins.Load(),
		FillErrors:        c.stats.fillErrors.Load(),
		BytesFromUpstream: c.stats.bytesFromUpstream.Load(),
		BytesFromShared:   c.stats.bytesFromShared.Load(),
		BytesFromCache:    c.stats.bytesFromCache.Load(),
		BytesServed:       c.stats.bytesServed.Load(),
		Evictions:         c.stats.evictions.Load(),
		EvictedBytes:      c.stats.evictedBytes.Load(),
		SharedHits:        c.stats.sharedHits.Load(),
		SharedUploads:     c.stats.sharedUploads.Load(),
		SharedErrors:      c.stats.sharedErrors.Load(),
	}
	c.mu.Lock()
	s.Entries = len(c.entries)
	s.Size = c.total
	s.Inflight = len(c.fills)
	c.mu.Unlock()
	return s
}
