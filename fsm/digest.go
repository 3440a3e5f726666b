package fsm

import (
	"crypto/sha256"
	"sort"
)

// Digest returns the index of the last log entry applied (0 when none has
// been applied since the state machine was created or last restored from a
// snapshot) and a SHA-256 hash of the whole replicated state at that index:
// the cluster clock, the counters, every key's slot, interval and span
// (and every CL.THROTTLE key's arrival time), expired or not, the
// membership metadata, and the idempotency tokens and forwarding sequence
// numbers, in a canonical order.
// Replicas that
// applied the same log report the same digest at the same index, whatever
// their history of snapshots and restarts; fault tests compare them
// (RAFT.DIGEST).
func (f *FSM) Digest() (index uint64, sum [sha256.Size]byte) {
	f.mu.RLock()
	img := &image{now: f.now, stats: f.stats, keys: make([]keyState, 0, f.ks.len()), nodes: make([]Node, 0, len(f.nodes))}
	f.ks.each(func(id uint32, st *record) {
		if st.cell() {
			img.cells = append(img.cells, cellKey{key: f.ks.keyOf(id), tat: st.last})
		} else {
			img.keys = append(img.keys, keyState{key: f.ks.keyOf(id), last: st.last, interval: st.interval(), span: f.ks.span(id, st)})
		}
	})
	for id, addr := range f.nodes {
		img.nodes = append(img.nodes, Node{ID: id, RESPAddr: addr})
	}
	img.tokens = f.tokenRecords() // in log order: the same on every replica
	img.seqs = f.tokens.seqs.records()
	index = f.applied
	f.mu.RUnlock()
	sort.Slice(img.keys, func(i, j int) bool { return img.keys[i].key < img.keys[j].key })
	sort.Slice(img.cells, func(i, j int) bool { return img.cells[i].key < img.cells[j].key })
	sort.Slice(img.nodes, func(i, j int) bool { return img.nodes[i].ID < img.nodes[j].ID })
	h := sha256.New()
	// The snapshot encoding is canonical once keys and nodes are sorted;
	// writing to a hash cannot fail.
	_ = img.writeTo(h)
	copy(sum[:], h.Sum(nil))
	return index, sum
}
