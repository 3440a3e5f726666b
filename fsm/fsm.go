package fsm

import (
	"bytes"
	"fmt"
	"hash/crc64"
	"io"
	"log/slog"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// Config configures an FSM. The zero value is ready to use.
type Config struct {
	// Logger receives the state machine's logs; nil discards them.
	Logger *slog.Logger
}

// Result is the outcome of one command of an applied entry.
type Result struct {
	// Permit is the answer to an Acquire.
	Permit Permit
	// Cell is the answer to a CellThrottle.
	Cell CellResult
	// Count is, for a Reset, how many of its keys existed (unexpired).
	Count int64
	// Err is the command's error, if any; the command then changed nothing.
	Err error
}

// Stats counts acquire outcomes since the log began. They are part of the
// replicated state, so every node reports the same cluster-wide totals.
type Stats struct {
	// Grants counts slots granted for immediate use.
	Grants int64
	// Reservations counts future slots granted.
	Reservations int64
	// Denials counts refused acquires.
	Denials int64
}

// KeyState is the visible state of one key, for inspection and tests.
type KeyState struct {
	// Last is the newest granted slot (Unix ms, cluster time), or for a
	// CL.THROTTLE key its theoretical arrival time (Unix ns).
	Last int64
	// Interval is the interval Last was granted with; 0 for a
	// CL.THROTTLE key.
	Interval int64
	// Cell reports a key made by CL.THROTTLE.
	Cell bool
}

// Node is a member's entry in the replicated membership metadata.
type Node struct {
	// ID is the member's Raft server ID.
	ID string
	// RESPAddr is where the member serves RESP.
	RESPAddr string
}

// FSM is the replicated state machine. It implements raft.FSM. Apply is
// called by Raft on one goroutine; the read methods may be called
// concurrently from any goroutine.
type FSM struct {
	logger *slog.Logger

	mu  sync.RWMutex
	now int64 // cluster clock: the largest entry time applied so far
	// ks holds the keys, their expiry heap and scan index (see store).
	ks    *store
	nodes map[string]string
	stats Stats
	// mem is the accounted size of keys (see KeyCost), kept as keys are
	// added, removed and pruned: a function of the key set alone, so every
	// replica holds the same figure.
	mem int64
	// recent holds the results of the last applied entries (ResultsAt).
	recent *recent
	// applied is the index of the last log entry Apply applied, 0 until the
	// first one since New or the last Restore (see Digest).
	applied uint64
	// tokens are the idempotency tokens of the last TokenWindow.
	tokens *tokenTable
	// preload is an image decoded from a snapshot file with CRC-64
	// preloadSum, for the next Restore (see Preload).
	preload    *Image
	preloadSum uint64
	// copies are the snapshots whose keys are still being copied (see
	// keyCopy).
	copies []*keyCopy

	// decMu guards decCmds and decSlab, the decoding space Apply reuses
	// from one entry to the next (see decodeEntryInto). Raft calls Apply
	// on one goroutine; the lock makes a concurrent caller safe, not
	// fast.
	decMu   sync.Mutex
	decCmds []Command
	decSlab []Acquire
}

var _ raft.FSM = (*FSM)(nil)

// New returns an empty state machine.
func New(cfg Config) *FSM {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &FSM{logger: lg, ks: newStore(), nodes: make(map[string]string), recent: new(recent), tokens: newTokenTable()}
}

// Apply implements raft.FSM. It decodes the entry and returns []Result, one
// per command. It panics if the entry cannot be decoded: a committed entry
// this replica cannot read means its state would silently diverge from the
// other replicas', and stopping is the only safe answer.
func (f *FSM) Apply(l *raft.Log) any {
	f.decMu.Lock()
	defer f.decMu.Unlock()
	f.decSlab = f.decSlab[:0]
	e, err := decodeEntryInto(f.decCmds[:0], l.Data, false, "", &f.decSlab)
	if err != nil {
		panic(fmt.Sprintf("fsm: log entry %d (term %d): %v", l.Index, l.Term, err))
	}
	defer func() { f.decCmds, f.decSlab = reuseDecoded(e.Commands, f.decSlab) }()
	f.mu.Lock()
	defer f.mu.Unlock()
	results := f.applyEntry(l.Index, e)
	f.recent.add(l.Index, l.Data, results)
	return results
}

// decodeReuse is the most commands whose decoding space Apply keeps for
// the next entry: a full batch (server.Config.MaxBatch's default), so
// that one huge entry does not hold its space for good.
const decodeReuse = 512

// reuseDecoded empties an applied entry's commands and Acquires for the
// next Apply: cleared, so that they keep no key or command alive, and
// dropped when larger than decodeReuse.
func reuseDecoded(cmds []Command, slab []Acquire) ([]Command, []Acquire) {
	clear(cmds)
	clear(slab)
	if cap(cmds) > decodeReuse {
		cmds = nil
	}
	if cap(slab) > decodeReuse {
		slab = nil
	}
	return cmds[:0], slab[:0]
}

// applyEntry applies e, the entry at index; f.mu is held.
func (f *FSM) applyEntry(index uint64, e Entry) []Result {
	f.applied = index
	// The clock never runs backwards, even when a new leader's wall clock is
	// behind its predecessor's: that is what keeps slots spaced across
	// failovers.
	f.now = max(f.now, e.Now)
	f.prune()
	f.tokens.prune(f.now)
	results := make([]Result, len(e.Commands))
	for i, c := range e.Commands {
		results[i] = f.apply(c)
	}
	return results
}

func (f *FSM) apply(c Command) Result {
	switch c := c.(type) {
	case *Acquire:
		return f.acquire(c)
	case Acquire:
		return f.acquire(&c)
	case Cancel:
		return f.cancel(c)
	case Reset:
		var n int64
		for _, k := range c.Keys {
			if _, st := f.live(k); st != nil {
				n++
			}
			f.remove(k)
		}
		return Result{Count: n}
	case SetNode:
		f.nodes[c.ID] = c.RESPAddr
		return Result{}
	case RemoveNode:
		delete(f.nodes, c.ID)
		return Result{}
	case CellThrottle:
		return f.applyCell(c)
	case FlushAll:
		// The old store is dropped whole, not emptied: a snapshot copy may
		// still be walking it (see keyCopy).
		f.ks, f.mem = newStore(), 0
		return Result{}
	default:
		// DecodeEntry only produces the types above.
		panic(fmt.Sprintf("fsm: unhandled command %T", c))
	}
}

// acquire applies c, which it does not keep.
func (f *FSM) acquire(c *Acquire) Result {
	if err := c.Validate(); err != nil {
		return Result{Err: err}
	}
	id := tokenID{kind: tokenAcquire, key: c.Key, token: c.Token}
	if c.Token != "" {
		if p, ok := f.tokens.get(id); ok {
			// A retry of a grant already made: the same answer, and
			// nothing taken again.
			return Result{Permit: p}
		}
	}
	seq := sequenced(c.Token, c.Session)
	if seq {
		if r, ok := f.seqSeen(seqID{c.Session, c.Seq}, tokenAcquire, c.Key); ok {
			return r // a follower's resend of a grant already made
		}
	}
	kid, st := f.held(c.Key)
	if st != nil && st.cell() {
		return Result{Err: fmt.Errorf("%w: %s was made by CL.THROTTLE", ErrWrongType, quoteName(c.Key))}
	}
	d, err := decide(st, *c, f.now)
	if err != nil {
		return Result{Err: err}
	}
	if d.permit.Granted && kid == 0 && f.full(f.now) {
		return Result{Err: keyLimit(c.Key)}
	}
	switch {
	case !d.permit.Granted:
		f.stats.Denials++
	case d.reserved:
		f.stats.Reservations++
	default:
		f.stats.Grants++
	}
	if d.permit.Granted {
		f.setKey(c.Key, kid, d.newLast, c.Interval, c.slots()-1, false)
		if c.Token != "" {
			f.tokens.add(id, f.now, c.TokenWindow, d.permit)
		} else if seq {
			f.rememberSeq(seqID{c.Session, c.Seq}, tokenAcquire, c.Key, c.TokenWindow, d.permit)
		}
	}
	return Result{Permit: d.permit}
}

// live returns key's id and record, or 0 and nil when it is absent or
// expired at f.now.
func (f *FSM) live(key string) (uint32, *record) {
	return f.liveAt(key, f.now)
}

// cancel applies c: if key's newest grant is live, not given back yet, and
// its first slot is c.ValidAt, the key goes back to what it was before
// that grant as far as any later call can tell (its last slot one interval
// before that first slot, or no state at all when that is already
// expired), and the result counts 1; else nothing changes and it counts 0.
func (f *FSM) cancel(c Cancel) Result {
	if err := c.Validate(); err != nil {
		return Result{Err: err}
	}
	id := tokenID{kind: tokenCancel, key: c.Key, token: c.Token}
	if c.Token != "" {
		if _, ok := f.tokens.get(id); ok {
			return Result{Count: 1}
		}
	}
	seq := sequenced(c.Token, c.Session)
	if seq {
		if r, ok := f.seqSeen(seqID{c.Session, c.Seq}, tokenCancel, c.Key); ok {
			return r
		}
	}
	kid, st := f.live(c.Key)
	if st != nil && st.cell() {
		return Result{Err: fmt.Errorf("%w: %s was made by CL.THROTTLE", ErrWrongType, quoteName(c.Key))}
	}
	if st == nil {
		return Result{}
	}
	span, iv := f.ks.span(kid, st), st.interval()
	if span < 0 {
		return Result{}
	}
	// last = first + span·interval was checked against overflow when
	// granted (and when an image was restored), so this cannot overflow.
	first := st.last - span*iv
	if first != c.ValidAt {
		return Result{}
	}
	if prev := first - iv; first <= f.now || prev < 0 {
		// The state before the grant would expire at first: absent now.
		f.remove(c.Key)
	} else {
		f.preserve(c.Key, st.hash, kid)
		f.ks.update(kid, prev, iv, -1, false)
	}
	if c.Token != "" {
		f.tokens.add(id, f.now, c.TokenWindow, Permit{})
	} else if seq {
		f.rememberSeq(seqID{c.Session, c.Seq}, tokenCancel, c.Key, c.TokenWindow, Permit{})
	}
	return Result{Count: 1}
}

// held is live without the second lookup that storing a key's new
// state would take: it returns key's id whenever the store holds the key
// (0 when not), and its record only when it is unexpired at f.now.
func (f *FSM) held(key string) (uint32, *record) {
	id, st := f.ks.get(key)
	if st != nil && f.now >= st.deadline() {
		st = nil
	}
	return id, st
}

// setKey stores key's state; id is what held returned for it.
func (f *FSM) setKey(key string, id uint32, last, interval, span int64, cell bool) {
	if id != 0 {
		f.preserve(key, f.ks.rec(id).hash, id)
		f.ks.update(id, last, interval, span, cell)
		return
	}
	h := keyHash(key)
	f.preserve(key, h, 0)
	f.ks.insert(key, h, last, interval, span, cell)
	f.mem += KeyCost(key)
}

func (f *FSM) remove(key string) {
	if id, st := f.ks.get(key); st != nil {
		f.preserve(key, st.hash, id)
		f.mem -= KeyCost(key)
		f.ks.remove(id)
	}
}

// prune drops keys that have expired at f.now.
func (f *FSM) prune() {
	for f.ks.len() > 0 {
		id := f.ks.heap[0]
		st := f.ks.rec(id)
		if st.deadline() > f.now {
			return
		}
		if len(f.copies) > 0 {
			// Only a snapshot copy reads the key (a map lookup for a
			// long one).
			f.preserve(f.ks.keyView(id, st), st.hash, id)
		}
		f.mem -= keyCostLen(f.ks.keyLen(id, st))
		f.ks.remove(id)
	}
}

// Clock returns cluster time as a node whose wall clock reads wall should
// see it: never earlier than the newest applied entry.
func (f *FSM) Clock(wall int64) int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return max(f.now, wall)
}

// Peek answers c as Apply would at cluster time max(now, clock), changing
// nothing (THROTTLE.PEEK).
func (f *FSM) Peek(c Acquire, now int64) (Permit, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	_, st := f.liveAt(c.Key, now)
	if st != nil && st.cell() {
		return Permit{}, fmt.Errorf("%w: %s was made by CL.THROTTLE", ErrWrongType, quoteName(c.Key))
	}
	d, err := decide(st, c, now)
	if err == nil && d.permit.Granted && st == nil && f.full(now) {
		return Permit{}, keyLimit(c.Key)
	}
	return d.permit, err
}

// full reports whether the keys unexpired at cluster time now fill the
// store (maxKeys), so that creating one more must be refused; f.mu is
// held. The count is replicated state, so every replica agrees.
func (f *FSM) full(now int64) bool {
	n := f.ks.len()
	return n >= maxKeys && n-f.ks.countExpired(now) >= maxKeys
}

// keyLimit is the error refusing to create key in a full store.
func keyLimit(key string) error {
	return fmt.Errorf("%w: %d keys held, %s would be one more", ErrKeyLimit, maxKeys, quoteName(key))
}

// DBSize returns the number of keys unexpired at cluster time max(now, clock).
func (f *FSM) DBSize(now int64) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.ks.len() - f.ks.countExpired(max(now, f.now))
}

// Keys returns the state of every key unexpired at cluster time
// max(now, clock).
func (f *FSM) Keys(now int64) map[string]KeyState {
	f.mu.RLock()
	defer f.mu.RUnlock()
	now = max(now, f.now)
	out := make(map[string]KeyState, f.ks.len())
	f.ks.each(func(id uint32, st *record) {
		if now < st.deadline() {
			out[f.ks.keyOf(id)] = KeyState{Last: st.last, Interval: st.interval(), Cell: st.cell()}
		}
	})
	return out
}

// Nodes returns the membership metadata, sorted by ID.
func (f *FSM) Nodes() []Node {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Node, 0, len(f.nodes))
	for id, addr := range f.nodes {
		out = append(out, Node{ID: id, RESPAddr: addr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// NodeAddr returns the RESP address recorded for member id.
func (f *FSM) NodeAddr(id string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	a, ok := f.nodes[id]
	return a, ok
}

// Stats returns the cluster-wide acquire counters.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.stats
}

// Snapshot implements raft.FSM. It copies the small parts of the state
// (clock, counters, members), takes the tokens and forwarding numbers by
// their chunks and blocks, which Apply leaves as they are from then on
// (see tokenView and seqTable.freeze), and registers a copy of the keys
// that Persist, which Raft runs concurrently with later Applies, completes
// a chunk at a time (see keyCopy): Raft calls Snapshot on the goroutine
// that applies entries, so whatever it does here delays every commit.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img := &image{now: f.now, stats: f.stats, nodes: make([]Node, 0, len(f.nodes))}
	img.pending, img.owner = f.startCopy(), f
	img.tokView = f.tokens.view()
	img.seqBlocks, img.seqCount = f.tokens.seqs.freeze(), f.tokens.seqs.n
	for id, addr := range f.nodes {
		img.nodes = append(img.nodes, Node{ID: id, RESPAddr: addr})
	}
	sort.Slice(img.nodes, func(i, j int) bool { return img.nodes[i].ID < img.nodes[j].ID })
	return img, nil
}

// Backup writes the whole state to w as a snapshot image, the format
// Restore reads: the content of a backup file (RAFT.BACKUP).
func (f *FSM) Backup(w io.Writer) error {
	snap, err := f.Snapshot()
	if err != nil {
		return err
	}
	img := snap.(*image)
	defer img.Release()
	img.collect()
	return img.writeTo(w)
}

// Restore implements raft.FSM: it replaces the whole state with the
// snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	img, err := f.readRestore(rc)
	if err != nil {
		return err
	}
	ks, mem := buildStore(img)
	// The decoded image is garbage once the state is built; hand its
	// memory back (see returnMemory) after the swap below.
	defer returnMemory(ks.len())
	nodes := make(map[string]string, len(img.nodes))
	for _, n := range img.nodes {
		nodes[n.ID] = n.RESPAddr
	}
	tokens := newTokenTable()
	for _, r := range img.tokens {
		tokens.add(tokenID{kind: r.kind, key: r.key, token: r.token}, r.at, r.window, r.permit)
	}
	tokens.restoreSeqs(img.seqs)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now, f.stats, f.ks, f.nodes, f.mem = img.now, img.stats, ks, nodes, mem
	f.tokens = tokens
	f.applied = 0 // the snapshot's index is Raft's, not known here
	f.logger.Info("restored snapshot", "keys", ks.len(), "nodes", len(nodes), "tokens", len(img.tokens), "sequences", len(img.seqs), "clock", img.now)
	return nil
}

// readRestore decodes the image Restore reads from r, or takes the
// preloaded one when r holds the same bytes (same CRC-64).
func (f *FSM) readRestore(r io.Reader) (*image, error) {
	f.mu.Lock()
	pre, sum := f.preload, f.preloadSum
	f.preload, f.preloadSum = nil, 0
	f.mu.Unlock()
	if pre == nil {
		return readImage(r)
	}
	var buf bytes.Buffer
	crc := crc64.New(crcTable)
	if _, err := io.Copy(io.MultiWriter(&buf, crc), r); err != nil {
		return nil, fmt.Errorf("snapshot: %v: %w", err, ErrCorrupt)
	}
	if crc.Sum64() == sum {
		return pre.img, nil
	}
	return readImage(&buf)
}

// tokenRecords copies the remembered tokens in image order (see
// tokenView.records); f.mu is held, for reading at least.
func (f *FSM) tokenRecords() []tokenRecord {
	return f.tokens.records()
}
