package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net"
	"slices"
	"strconv"

	"github.com/hashicorp/raft"
)

// snapshotMagic and snapshotVersion open every snapshot, so that a snapshot
// from another program, or from a newer version, is refused rather than
// misread.
const (
	snapshotMagic   = "TDBSNAP"
	snapshotVersion = 2
)

// sectionTag opens each optional part of a version-2 image, after the
// members. Tags are numbered explicitly and only ever added; an image
// with a tag this build does not know is from a newer version and is
// refused (ErrUnknownType), never half read.
type sectionTag uint64

const (
	// sectionEnd ends the image.
	sectionEnd sectionTag = 0
	// sectionCellKeys holds the CL.THROTTLE keys: uvarint n,
	// n × (string key, varint TAT in Unix ns). It is written only when
	// there are such keys, so an image without any stays readable by a
	// version that does not know the section.
	sectionCellKeys sectionTag = 1
	// sectionTokens holds the idempotency tokens of the last TokenWindow,
	// oldest first: uvarint n, n × (byte kind, string key, string token,
	// varint at, byte granted, varint wait, valid, expires, pending).
	sectionTokens sectionTag = 2
	// sectionSpans holds the span (slots of the newest grant after its
	// first, or -1 once given back: see keyState.span) of each key whose
	// span is not 0: uvarint n, n × (string key, varint span). A key it
	// does not list has span 0, as every key of an image without it.
	sectionSpans sectionTag = 3
	// sectionTimedTokens holds the idempotency tokens remembered for a
	// window of their own (Acquire.TokenWindow), in the order they are
	// forgotten (tokenStamp.before): uvarint n, n × (byte kind, string key,
	// string token, varint at, varint window, byte granted, varint wait,
	// valid, expires, pending). Written only when there are such tokens.
	sectionTimedTokens sectionTag = 4
	// sectionSessions holds the forwarding sequence numbers remembered
	// (seqTable), block by block in the order they were last given a
	// number (the expiry list's), each block's in number order
	// (seqTable.records; restoring adds them in that order, which makes
	// the same blocks in the same order):
	// uvarint n, n × (session (8 bytes, little-endian), uvarint seq, byte
	// kind, string key, varint at, varint window, and for an ACQUIRE
	// varint wait, valid, expires, pending: a remembered ACQUIRE was
	// granted). Written only when there are such numbers.
	sectionSessions sectionTag = 5
)

// appendSessions writes section sectionSessions for seqs, flushing b
// through flush as it grows.
func appendSessions(b []byte, seqs []seqRecord, flush func([]byte) ([]byte, error)) ([]byte, error) {
	if len(seqs) == 0 {
		return b, nil
	}
	b = binary.AppendUvarint(b, uint64(sectionSessions))
	b = binary.AppendUvarint(b, uint64(len(seqs)))
	for _, r := range seqs {
		b = binary.LittleEndian.AppendUint64(b, r.session)
		b = binary.AppendUvarint(b, r.seq)
		b = append(b, byte(r.kind))
		b = appendString(b, r.key)
		b = binary.AppendVarint(b, r.at)
		b = binary.AppendVarint(b, r.window)
		if r.kind == tokenAcquire {
			for _, v := range []int64{r.permit.WaitMs, r.permit.ValidAt, r.permit.ExpiresAt, r.permit.Pending} {
				b = binary.AppendVarint(b, v)
			}
		}
		if len(b) > 32<<10 {
			var err error
			if b, err = flush(b); err != nil {
				return b, err
			}
		}
	}
	return b, nil
}

// readSessions reads the content of section sectionSessions.
func readSessions(sr *streamReader) []seqRecord {
	return readRecords(sr, sr.uvarint(), func() seqRecord {
		var r seqRecord
		var id [8]byte
		for i := range id {
			id[i] = sr.byte()
		}
		r.session = binary.LittleEndian.Uint64(id[:])
		r.seq, r.kind, r.key = sr.uvarint(), tokenKind(sr.byte()), sr.string()
		r.at, r.window = sr.varint(), sr.varint()
		if r.kind == tokenAcquire {
			r.permit = Permit{Granted: true, WaitMs: sr.varint(), ValidAt: sr.varint(), ExpiresAt: sr.varint(), Pending: sr.varint()}
		}
		return r
	})
}

// image is a point-in-time copy of the state, written by Persist:
//
//	magic, version, varint now, varint grants, reservations, denials,
//	uvarint nkeys, nkeys × (string key, varint last, varint interval),
//	uvarint nnodes, nnodes × (string id, string resp addr),
//	(version 2) sections: × (uvarint tag, its content), uvarint 0
//
// where a string is a uvarint length and its bytes. Version 1 images (no
// sections) are still read.
type image struct {
	now    int64
	stats  Stats
	keys   []keyState
	nodes  []Node
	cells  []cellKey     // section 1
	tokens []tokenRecord // section 2 (window 0), then section 4
	// tokView, when set, holds the tokens instead of tokens: those of the
	// state the snapshot was taken of, written from there without a copy.
	tokView *tokenView
	seqs    []seqRecord // section 5
	// seqBlocks, when set, are the blocks (frozen: see seqTable.freeze)
	// whose numbers collect lists into seqs, seqCount of them.
	seqBlocks []*seqBlock
	seqCount  int
	// pending, when set, is the copy of owner's keys that collect
	// completes into enc.
	pending *keyCopy
	owner   *FSM
	// enc, when set, holds the keys, cells and spans encoded, in place of
	// keys and cells: a snapshot's copy (see keyCopy).
	enc *keyBytes
}

// collect completes the copy of the keys, if one is pending.
func (img *image) collect() {
	if img.seqBlocks != nil {
		img.seqs = seqRecordsOf(img.seqBlocks, img.seqCount)
		img.seqBlocks = nil
	}
	if img.pending == nil {
		return
	}
	img.owner.finishCopy(img.pending)
	img.enc = img.pending.out
	img.pending = nil
}

// cellKey is a CL.THROTTLE key in an image: its theoretical arrival time.
type cellKey struct {
	key string
	tat int64 // Unix ns
}

var _ raft.FSMSnapshot = (*image)(nil)

// Persist implements raft.FSMSnapshot.
// The copy of the keys is dropped once written (Raft keeps the image until
// Release), its mappings unmapped, and the Go heap's free memory handed
// back (see returnMemory): the garbage a load left there would otherwise
// stay resident for minutes, and the collection walks only the small Go
// heap.
func (img *image) Persist(sink raft.SnapshotSink) error {
	img.collect()
	err := img.writeTo(sink)
	n := 0
	if img.enc != nil {
		n = img.enc.nkeys + img.enc.ncells
	}
	img.tokView = nil
	img.dropCopy()
	returnMemory(n)
	if err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// dropCopy frees the encoded copy of the keys, if any.
func (img *image) dropCopy() {
	if img.enc != nil {
		img.enc.free()
		img.enc = nil
	}
}

// writeTo writes the image in the format readImage reads.
func (img *image) writeTo(dst io.Writer) error {
	w := bufio.NewWriterSize(dst, 64<<10)
	var b []byte
	flush := func() error {
		_, err := w.Write(b)
		b = b[:0]
		return err
	}
	// copied writes a count and the copy's encoded records after it (see
	// keyCopy).
	copied := func(n int, l *byteLog) error {
		b = binary.AppendUvarint(b, uint64(n))
		if err := flush(); err != nil {
			return err
		}
		return l.writeTo(w)
	}
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	for _, v := range []int64{img.now, img.stats.Grants, img.stats.Reservations, img.stats.Denials} {
		b = binary.AppendVarint(b, v)
	}
	enc := img.enc
	if enc != nil {
		if err := copied(enc.nkeys, &enc.keys); err != nil {
			return err
		}
	} else {
		b = binary.AppendUvarint(b, uint64(len(img.keys)))
		for _, k := range img.keys {
			b = appendKey(b, k.key, k.last, k.interval)
			if len(b) > 32<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(img.nodes)))
	for _, n := range img.nodes {
		b = appendString(b, n.ID)
		b = appendString(b, n.RESPAddr)
	}
	if enc != nil && enc.ncells > 0 {
		b = binary.AppendUvarint(b, uint64(sectionCellKeys))
		if err := copied(enc.ncells, &enc.cells); err != nil {
			return err
		}
	} else if len(img.cells) > 0 {
		b = binary.AppendUvarint(b, uint64(sectionCellKeys))
		b = binary.AppendUvarint(b, uint64(len(img.cells)))
		for _, c := range img.cells {
			b = appendCell(b, c.key, c.tat)
			if len(b) > 32<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	for _, timed := range []bool{false, true} {
		n, tokens := img.tokenList(timed)
		if n == 0 {
			continue
		}
		tag := sectionTokens
		if timed {
			tag = sectionTimedTokens
		}
		b = binary.AppendUvarint(b, uint64(tag))
		b = binary.AppendUvarint(b, uint64(n))
		for t := range tokens {
			b = append(b, byte(t.kind))
			b = appendString(b, t.key)
			b = appendString(b, t.token)
			b = binary.AppendVarint(b, t.at)
			if timed {
				b = binary.AppendVarint(b, t.window)
			}
			granted := byte(0)
			if t.permit.Granted {
				granted = 1
			}
			b = append(b, granted)
			for _, v := range []int64{t.permit.WaitMs, t.permit.ValidAt, t.permit.ExpiresAt, t.permit.Pending} {
				b = binary.AppendVarint(b, v)
			}
			if len(b) > 32<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	b, err := appendSessions(b, img.seqs, func(b []byte) ([]byte, error) {
		_, err := w.Write(b)
		return b[:0], err
	})
	if err != nil {
		return err
	}
	var spans int
	for _, k := range img.keys {
		if k.span != 0 {
			spans++
		}
	}
	if enc != nil && enc.nspans > 0 {
		b = binary.AppendUvarint(b, uint64(sectionSpans))
		if err := copied(enc.nspans, &enc.spans); err != nil {
			return err
		}
	} else if spans > 0 {
		b = binary.AppendUvarint(b, uint64(sectionSpans))
		b = binary.AppendUvarint(b, uint64(spans))
		for _, k := range img.keys {
			if k.span != 0 {
				b = appendSpan(b, k.key, k.span)
			}
			if len(b) > 32<<10 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(sectionEnd))
	if err := flush(); err != nil {
		return err
	}
	return w.Flush()
}

// tokenList returns how many tokens section 2 (timed false) or 4 (timed
// true) holds and yields them in order, from tokView or tokens.
func (img *image) tokenList(timed bool) (int, iter.Seq[tokenRecord]) {
	if v := img.tokView; v != nil {
		if !timed {
			return v.n, func(yield func(tokenRecord) bool) {
				for c, e := range v.queue {
					if !yield(c.record(e)) {
						return
					}
				}
			}
		}
		list := v.ordered()
		return len(list), func(yield func(tokenRecord) bool) {
			for _, r := range list {
				if !yield(v.record(r)) {
					return
				}
			}
		}
	}
	var n int
	for _, t := range img.tokens {
		if (t.window != 0) == timed {
			n++
		}
	}
	return n, func(yield func(tokenRecord) bool) {
		for _, t := range img.tokens {
			if (t.window != 0) == timed && !yield(t) {
				return
			}
		}
	}
}

// Release implements raft.FSMSnapshot. It drops the tokens' chunks and
// the copy of the keys, and abandons a copy that Persist did not complete,
// so that Apply stops recording for it.
func (img *image) Release() {
	img.tokView = nil
	img.dropCopy()
	if img.pending == nil {
		return
	}
	img.owner.mu.Lock()
	img.owner.stopCopy(img.pending)
	img.owner.mu.Unlock()
	img.pending.out.free()
	img.pending = nil
}

// readRecords reads n records with read, stopping at the first error; the
// result is never nil. n comes from the image, so it is not trusted with
// an allocation: the records are gathered in blocks, small at first and
// growing to a bounded size, so that what is allocated is in proportion
// to what arrived, and copied once into a slice of their number, rather
// than grown by append, which copies a million keys several times over (a
// good part of a restart's decoding).
func readRecords[T any](sr *streamReader, n uint64, read func() T) []T {
	const first, most = 64, 1 << 14
	var blocks [][]T
	size := uint64(first)
	cur := make([]T, 0, min(n, size))
	for i := uint64(0); i < n && sr.err == nil; i++ {
		if len(cur) == cap(cur) {
			blocks = append(blocks, cur)
			size = min(2*size, most)
			cur = make([]T, 0, min(n-i, size))
		}
		cur = append(cur, read())
	}
	if blocks == nil {
		return cur
	}
	return slices.Concat(append(blocks, cur)...)
}

// readImage decodes a snapshot written by Persist. Errors wrap ErrCorrupt or
// ErrUnknownType.
func readImage(r io.Reader) (*image, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(br, magic); err != nil {
		return nil, fmt.Errorf("snapshot header: %v: %w", err, ErrCorrupt)
	}
	if string(magic[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("snapshot magic %q: %w", magic[:len(snapshotMagic)], ErrCorrupt)
	}
	version := magic[len(snapshotMagic)]
	if version != 1 && version != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d: %w", version, ErrUnknownType)
	}
	sr := streamReader{r: br}
	img := &image{now: sr.varint()}
	img.stats = Stats{Grants: sr.varint(), Reservations: sr.varint(), Denials: sr.varint()}
	img.keys = readRecords(&sr, sr.uvarint(), func() keyState {
		k := keyState{key: sr.string(), last: sr.varint(), interval: sr.varint()}
		k.hash = keyHash(k.key)
		return k
	})
	n := sr.uvarint()
	for i := uint64(0); i < n && sr.err == nil; i++ {
		img.nodes = append(img.nodes, Node{ID: sr.string(), RESPAddr: sr.string()})
	}
	var spans map[string]int64
	var seenTokens, seenTimed bool
	var timedTokens []tokenRecord
	for version >= 2 && sr.err == nil {
		tag := sectionTag(sr.uvarint())
		if tag == sectionEnd || sr.err != nil {
			break
		}
		switch tag {
		case sectionCellKeys:
			if img.cells != nil {
				return nil, invalidImage("CL.THROTTLE key section appears twice")
			}
			img.cells = readRecords(&sr, sr.uvarint(), func() cellKey { return cellKey{key: sr.string(), tat: sr.varint()} })
		case sectionTokens, sectionTimedTokens:
			timed := tag == sectionTimedTokens
			if timed && seenTimed || !timed && seenTokens {
				return nil, invalidImage("tokens section %d appears twice", tag)
			}
			if timed {
				seenTimed = true
			} else {
				seenTokens = true
			}
			var list []tokenRecord
			n := sr.uvarint()
			for i := uint64(0); i < n && sr.err == nil; i++ {
				t := tokenRecord{kind: tokenKind(sr.byte()), key: sr.string(), token: sr.string(), at: sr.varint()}
				if timed {
					t.window = sr.varint()
				}
				switch g := sr.byte(); g {
				case 0, 1:
					t.permit.Granted = g == 1
				default:
					sr.fail(fmt.Errorf("granted flag %d", g))
				}
				t.permit.WaitMs, t.permit.ValidAt, t.permit.ExpiresAt, t.permit.Pending = sr.varint(), sr.varint(), sr.varint(), sr.varint()
				list = append(list, t)
			}
			if timed {
				timedTokens = list
			} else {
				img.tokens = list
			}
		case sectionSessions:
			if img.seqs != nil {
				return nil, invalidImage("forwarding sessions section appears twice")
			}
			img.seqs = readSessions(&sr)
		case sectionSpans:
			if spans != nil {
				return nil, invalidImage("spans section appears twice")
			}
			spans = map[string]int64{}
			n := sr.uvarint()
			for i := uint64(0); i < n && sr.err == nil; i++ {
				k, v := sr.string(), sr.varint()
				if _, dup := spans[k]; dup && sr.err == nil {
					return nil, invalidImage("key %s: span appears twice", quoteName(k))
				}
				spans[k] = v
			}
		default:
			return nil, fmt.Errorf("snapshot section %d: %w", tag, ErrUnknownType)
		}
	}
	if sr.err != nil {
		return nil, sr.err
	}
	img.tokens = append(img.tokens, timedTokens...)
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after snapshot: %w", ErrCorrupt)
	}
	if len(spans) > 0 {
		for i := range img.keys {
			if v, ok := spans[img.keys[i].key]; ok {
				img.keys[i].span = v
				delete(spans, img.keys[i].key)
			}
		}
		for k := range spans {
			return nil, invalidImage("span of key %s, which the image does not hold", quoteName(k))
		}
	}
	if err := img.validate(); err != nil {
		return nil, err
	}
	return img, nil
}

// MaxClock is the latest cluster time (Unix ms) an image may hold: the
// last millisecond of the year 9999. A real clock is far below it; an image
// clock near 2^63 would make every later ACQUIRE overflow, for good, since
// the cluster clock never runs backwards.
const MaxClock int64 = 253402300799999

// MaxBackupLead is how far (ms) the clock of a backup may be ahead of the
// cluster time of the cluster that restores it: one day. Restoring moves
// the cluster clock forward to the backup's, so a backup from a node whose
// wall clock was wildly ahead would otherwise stall every key's slots by
// that much; a day covers any real clock skew between two clusters.
const MaxBackupLead int64 = 24 * 60 * 60 * 1000

// MaxNodeFieldLen is the longest member ID, Raft address or RESP address
// accepted, in bytes (see ValidateNode).
const MaxNodeFieldLen = 1024

// invalidImage wraps a description of what is wrong with an image with
// ErrInvalidImage.
func invalidImage(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrInvalidImage, fmt.Errorf(format, args...))
}

// quoteName quotes a key or member ID for an error message: escaped (so
// that the message stays on one line) and cut to 64 bytes.
func quoteName(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// validate checks that the image holds state that valid commands could
// have produced, so that a hostile or damaged image is refused before it
// replaces anything. It is the check every path into the state machine
// shares: Raft's Restore at start and on InstallSnapshot, and RAFT.RESTORE
// (which adds ValidateBackup's checks against the cluster's clock).
//
// Why these bounds: the state machine keeps every key's last slot plus its
// interval within int64 (decide refuses grants that would not be), slots
// are granted at cluster times, which are never negative, and it holds one
// state per key and one address per member. A last slot far beyond the
// clock is not refused: a client may legitimately reserve that far ahead
// (THROTTLE.ACQUIRE k 1000000000000000000 9), so no tighter bound holds for
// every reachable state.
func (img *image) validate() error {
	if img.now < 0 || img.now > MaxClock {
		return invalidImage("clock %d is outside 0..%d", img.now, MaxClock)
	}
	for _, c := range []struct {
		name string
		v    int64
	}{{"grants", img.stats.Grants}, {"reservations", img.stats.Reservations}, {"denials", img.stats.Denials}} {
		if c.v < 0 {
			return invalidImage("%s counter %d is negative", c.name, c.v)
		}
	}
	if n := len(img.keys) + len(img.cells); n > maxKeys {
		return invalidImage("%d keys, more than the %d a node holds", n, maxKeys)
	}
	// Keys are unique when they are in strictly increasing scan index
	// order, as Persist writes them (hash set by readImage); only an image
	// in another order needs a set to find a key listed twice.
	sorted := true
	for i := 1; i < len(img.keys) && sorted; i++ {
		sorted = indexLess(&img.keys[i-1], &img.keys[i])
	}
	var seen map[string]struct{}
	if !sorted {
		seen = make(map[string]struct{}, len(img.keys))
	}
	for _, k := range img.keys {
		switch {
		case k.key == "" || len(k.key) > MaxKeyLen:
			return invalidImage("key %s: length %d is outside 1..%d", quoteName(k.key), len(k.key), MaxKeyLen)
		case k.interval < 1:
			return invalidImage("key %s: interval %d is less than 1", quoteName(k.key), k.interval)
		case k.last < 0:
			return invalidImage("key %s: last slot %d is negative", quoteName(k.key), k.last)
		case k.last > math.MaxInt64-k.interval:
			return invalidImage("key %s: last slot %d plus interval %d overflows int64", quoteName(k.key), k.last, k.interval)
		}
		if seen != nil {
			if _, dup := seen[k.key]; dup {
				return invalidImage("key %s appears twice", quoteName(k.key))
			}
			seen[k.key] = struct{}{}
		}
		// The newest grant's first slot, last - span·interval, must be a
		// cluster time: no overflow, not negative.
		var m checked
		if k.span < -1 || k.span > 0 && (m.mul(k.span, k.interval) > k.last || m.overflow) {
			return invalidImage("key %s: span %d with interval %d does not fit before last slot %d", quoteName(k.key), k.span, k.interval, k.last)
		}
	}
	if err := validateTokens(img.tokens, img.now); err != nil {
		return err
	}
	if err := validateSeqs(img.seqs, img.now); err != nil {
		return err
	}
	if seen == nil && len(img.cells) > 0 {
		// A CL.THROTTLE key must not also be a throttle key.
		seen = make(map[string]struct{}, len(img.keys))
		for _, k := range img.keys {
			seen[k.key] = struct{}{}
		}
	}
	for _, c := range img.cells {
		switch {
		case c.key == "" || len(c.key) > MaxKeyLen:
			return invalidImage("CL.THROTTLE key %s: length %d is outside 1..%d", quoteName(c.key), len(c.key), MaxKeyLen)
		case c.tat < 0:
			return invalidImage("CL.THROTTLE key %s: arrival time %d is negative", quoteName(c.key), c.tat)
		}
		if _, dup := seen[c.key]; dup {
			return invalidImage("key %s appears twice", quoteName(c.key))
		}
		seen[c.key] = struct{}{}
	}
	ids := make(map[string]struct{}, len(img.nodes))
	for _, n := range img.nodes {
		if n.ID == "" {
			return invalidImage("member with an empty ID")
		}
		if _, dup := ids[n.ID]; dup {
			return invalidImage("member %s appears twice", quoteName(n.ID))
		}
		ids[n.ID] = struct{}{}
	}
	return nil
}

// validateTokens checks an image's tokens: known kinds, valid keys,
// tokens of 1 to MaxTokenLen bytes, times between 0 and the clock, each
// token once; those kept for TokenWindow (window 0) first, in the order
// they were applied, then those kept for a window of their own, of 1 to
// TokenWindow-1 ms (a token asked to be kept for TokenWindow is kept with
// the others), in the order they are forgotten.
func validateTokens(tokens []tokenRecord, now int64) error {
	seen := make(map[tokenID]struct{}, len(tokens))
	var prev tokenStamp
	timed := false
	for _, t := range tokens {
		s := tokenStamp{id: tokenID{kind: t.kind, key: t.key, token: t.token}, at: t.at, window: t.window}
		switch {
		case t.kind != tokenAcquire && t.kind != tokenCancel:
			return invalidImage("token of unknown kind %d", t.kind)
		case t.key == "" || len(t.key) > MaxKeyLen:
			return invalidImage("token for key %s: key length %d is outside 1..%d", quoteName(t.key), len(t.key), MaxKeyLen)
		case t.token == "" || len(t.token) > MaxTokenLen:
			return invalidImage("token %s: length %d is outside 1..%d", quoteName(t.token), len(t.token), MaxTokenLen)
		case t.at < 0 || t.at > now:
			return invalidImage("token %s: time %d is before 0 or after the clock %d", quoteName(t.token), t.at, now)
		case t.window < 0 || t.window >= TokenWindow:
			return invalidImage("token %s: window %d is outside 1..%d", quoteName(t.token), t.window, TokenWindow-1)
		case t.window == 0 && timed:
			return invalidImage("token %s: kept for the whole window, listed after one kept for less", quoteName(t.token))
		case t.window == 0 && t.at < prev.at:
			return invalidImage("token %s: time %d is out of order", quoteName(t.token), t.at)
		case t.window != 0 && timed && !prev.before(s):
			return invalidImage("token %s: out of order", quoteName(t.token))
		}
		if _, dup := seen[s.id]; dup {
			return invalidImage("token %s for key %s appears twice", quoteName(t.token), quoteName(t.key))
		}
		seen[s.id] = struct{}{}
		prev, timed = s, t.window != 0
	}
	return nil
}

// CheckImage decodes a snapshot image from r and checks it as Restore
// would, without building any state. Errors wrap ErrCorrupt,
// ErrUnknownType or ErrInvalidImage.
func CheckImage(r io.Reader) error {
	_, err := readImage(r)
	return err
}

// Image is a decoded and checked snapshot image, for Preload.
type Image struct{ img *image }

// DecodeImage decodes a snapshot image from r and checks it as Restore
// would: it is how a node verifies its snapshots at start. The result can
// be handed to Preload so that the newest snapshot is not decoded a second
// time. Errors wrap ErrCorrupt, ErrUnknownType or ErrInvalidImage.
func DecodeImage(r io.Reader) (*Image, error) {
	img, err := readImage(r)
	if err != nil {
		return nil, err
	}
	return &Image{img: img}, nil
}

// Preload keeps img, the decoded content of a snapshot file whose CRC-64
// (ECMA) is sum, for the next Restore: if that Restore reads a stream with
// the same checksum it installs img instead of decoding the stream again.
// Decoding and checking a million keys takes about as long as building
// the state from them, and a node at start does both (it verifies its
// snapshots before Raft restores the newest). Preload(nil, 0) drops what
// is kept.
func (f *FSM) Preload(img *Image, sum uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.preload, f.preloadSum = img, sum
}

// ValidateBackup decodes a backup image (RAFT.BACKUP's output, or a
// snapshot's state.bin) and checks it for restoring into a cluster whose
// cluster time is clock: everything Restore checks, plus that the image's
// clock is at most MaxBackupLead ahead of clock and that every member entry
// is one ValidateNode accepts. It changes nothing. Errors wrap ErrCorrupt
// or ErrUnknownType (not a decodable image) or ErrInvalidImage.
func ValidateBackup(r io.Reader, clock int64) error {
	img, err := readImage(r)
	if err != nil {
		return err
	}
	if img.now > clock && img.now-clock > MaxBackupLead {
		return invalidImage("clock %d is %d ms ahead of the cluster's %d (at most %d allowed)",
			img.now, img.now-clock, clock, MaxBackupLead)
	}
	for _, n := range img.nodes {
		if err := ValidateNode(n.ID, n.RESPAddr); err != nil {
			return invalidImage("member %s: %v", quoteName(n.ID), err)
		}
	}
	return nil
}

// ValidateNode reports whether id and addr are acceptable as a member's ID
// and address (RAFT.JOIN's arguments, or an image's member entries): a
// non-empty ID and a host:port address with a numeric port, each at most
// MaxNodeFieldLen bytes. The error wraps ErrInvalidNode.
func ValidateNode(id, addr string) error {
	if id == "" || len(id) > MaxNodeFieldLen {
		return fmt.Errorf("%w: ID of %d bytes (1 to %d allowed)", ErrInvalidNode, len(id), MaxNodeFieldLen)
	}
	if err := ValidateAddr(addr); err != nil {
		return err
	}
	return nil
}

// ValidateAddr reports whether addr is a host:port address with a numeric
// port of at most MaxNodeFieldLen bytes. The error wraps ErrInvalidNode.
func ValidateAddr(addr string) error {
	if len(addr) > MaxNodeFieldLen {
		return fmt.Errorf("%w: address of %d bytes (at most %d allowed)", ErrInvalidNode, len(addr), MaxNodeFieldLen)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: address %s: %w", ErrInvalidNode, strconv.Quote(addr), err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%w: address %s: port %s is not a number from 0 to 65535", ErrInvalidNode, strconv.Quote(addr), strconv.Quote(port))
	}
	return nil
}

// streamReader is decoder's counterpart for a stream: counts are not
// preallocated, so a corrupt count fails at end of data, not in make.
type streamReader struct {
	r   *bufio.Reader
	err error
}

func (s *streamReader) fail(err error) {
	if s.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		s.err = fmt.Errorf("snapshot: %v: %w", err, ErrCorrupt)
	}
}

func (s *streamReader) varint() int64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(s.r)
	if err != nil {
		s.fail(err)
	}
	return v
}

func (s *streamReader) uvarint() uint64 {
	if s.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(s.r)
	if err != nil {
		s.fail(err)
	}
	return v
}

func (s *streamReader) byte() byte {
	if s.err != nil {
		return 0
	}
	b, err := s.r.ReadByte()
	if err != nil {
		s.fail(err)
	}
	return b
}

func (s *streamReader) string() string {
	n := s.uvarint()
	if s.err != nil {
		return ""
	}
	if n > MaxKeyLen {
		s.fail(fmt.Errorf("string of %d bytes", n))
		return ""
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		s.fail(err)
		return ""
	}
	return string(b)
}
