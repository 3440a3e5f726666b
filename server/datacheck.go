package server

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/throttledb/throttledb/fsm"
)

// ErrDataCorrupt is returned by Start (and Recover) when the data directory's
// Raft log, stable store or a snapshot is damaged: truncated, overwritten,
// or holding records that cannot be read. The error names the file; the
// node does not serve. See "Damaged storage" in cluster.md for recovery.
var ErrDataCorrupt = errors.New("data directory is damaged")

// recoveryHint ends every ErrDataCorrupt message.
const recoveryHint = `the node will not serve from it; see "Damaged storage" in cluster.md: remove the node from its cluster, move this data directory aside and join again, or restore from a backup`

// corrupt wraps cause, found in file, with ErrDataCorrupt.
func corrupt(file string, cause error) error {
	return fmt.Errorf("%w: %s: %w (%s)", ErrDataCorrupt, file, cause, recoveryHint)
}

// On-disk layout of a bbolt (v1.3.5 and v1.3.6, which raft-wal needs: the
// format did not change) file, from its page.go and db.go: every
// page starts with a 16-byte header (id uint64, flags uint16, count uint16,
// overflow uint32); pages 0 and 1 are meta pages whose meta follows the
// header. bbolt writes these structs in the machine's byte order.
const (
	boltMagic         = 0xED0CDAED
	boltVersion       = 2
	boltPageHeader    = 16
	boltMetaSize      = 64 // magic .. checksum
	boltMetaChecked   = 56 // the checksum covers the meta up to itself
	boltElemSize      = 16 // branch and leaf page elements
	boltBucketHeader  = 16 // root pgid, sequence
	boltBranchFlag    = 0x01
	boltLeafFlag      = 0x02
	boltFreelistFlag  = 0x10
	boltBucketLeaf    = 0x01
	boltNoFreelist    = ^uint64(0)
	boltMinPageSize   = 512
	boltMaxPageSize   = 1 << 20
	boltMaxTreeDepth  = 64
	boltFreelistLarge = 0xFFFF
)

var boltOrder = binary.NativeEndian

// boltMeta is the part of a bbolt meta page the check uses.
type boltMeta struct {
	pageSize uint64
	root     uint64 // root bucket's page
	freelist uint64 // freelist page, or boltNoFreelist
	pgid     uint64 // high-water mark: pages in use are below it
	txid     uint64
}

// parseBoltMeta decodes and validates the meta in a meta page, as bbolt's
// meta.validate does: magic, version and (when set) the FNV-64a checksum.
func parseBoltMeta(page []byte) (boltMeta, error) {
	if len(page) < boltPageHeader+boltMetaSize {
		return boltMeta{}, fmt.Errorf("meta page of %d bytes", len(page))
	}
	m := page[boltPageHeader : boltPageHeader+boltMetaSize]
	if v := boltOrder.Uint32(m[0:]); v != boltMagic {
		return boltMeta{}, fmt.Errorf("meta magic %#x is not bbolt's", v)
	}
	if v := boltOrder.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("meta version %d, want %d", v, boltVersion)
	}
	if sum := boltOrder.Uint64(m[56:]); sum != 0 {
		h := fnv.New64a()
		h.Write(m[:boltMetaChecked])
		if h.Sum64() != sum {
			return boltMeta{}, fmt.Errorf("meta checksum mismatch")
		}
	}
	return boltMeta{
		pageSize: uint64(boltOrder.Uint32(m[8:])),
		root:     boltOrder.Uint64(m[16:]),
		freelist: boltOrder.Uint64(m[32:]),
		pgid:     boltOrder.Uint64(m[40:]),
		txid:     boltOrder.Uint64(m[48:]),
	}, nil
}

// checkBoltFile verifies the structure of the bbolt file at path before
// bbolt maps it, so that damage is reported instead of served or faulted
// on. It chooses the meta page bbolt would (the valid one with the higher
// transaction ID), refuses a file shorter than that meta's high-water mark
// (bbolt would map past the end of the file and die of SIGBUS on first
// touch), and then does what bbolt's Tx.Check does, on pages it reads itself
// with bounds checked: every page of every bucket's tree is in range, has
// its own ID and a branch or leaf type, and is referenced once; every
// element lies inside its page; the freelist's pages are in range and not
// freed twice; and every page below the high-water mark is either in use
// or free.
//
// Why not Tx.Check itself: in bbolt v1.3.5 it needs the file mapped (which
// is what dies of SIGBUS on a truncated file), runs in a goroutine of its
// own, and goes on using a page after reporting it out of bounds: on the
// issue's file (64 KB of random bytes in the middle) it reported one error
// and then spent minutes marking the ~2^32 "overflow pages" of a garbage
// header (the experiment was stopped after a minute), and a garbage child
// page ID makes it read outside the mapping, a fault no recover catches.
// A missing or empty file is not damage: bbolt creates it.
func checkBoltFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	if err := checkBolt(f, uint64(st.Size())); err != nil {
		return corrupt(path, err)
	}
	return nil
}

// checkBolt is checkBoltFile on an open file of the given size.
func checkBolt(f io.ReaderAt, size uint64) error {
	// bbolt reads the first 4 KiB to find the page size; a shorter file
	// does not open.
	first := make([]byte, 0x1000)
	if n, err := f.ReadAt(first, 0); n < len(first) {
		return fmt.Errorf("file of %d bytes is too short for a bbolt header: %v", size, err)
	}
	pageSize := uint64(os.Getpagesize())
	m0, err0 := parseBoltMeta(first)
	if err0 == nil {
		pageSize = m0.pageSize
	}
	if pageSize < boltMinPageSize || pageSize > boltMaxPageSize || pageSize&(pageSize-1) != 0 {
		return fmt.Errorf("page size %d is not a power of two from %d to %d", pageSize, boltMinPageSize, boltMaxPageSize)
	}
	second := make([]byte, boltPageHeader+boltMetaSize)
	var m1 boltMeta
	err1 := errors.New("file ends before the second meta page")
	if n, _ := f.ReadAt(second, int64(pageSize)); n == len(second) {
		m1, err1 = parseBoltMeta(second)
	}
	var m boltMeta
	switch {
	case err0 == nil && err1 == nil:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case err0 == nil:
		m = m0
	case err1 == nil:
		m = m1
	default:
		return fmt.Errorf("both meta pages are invalid: %v; %v", err0, err1)
	}
	if m.pageSize != pageSize {
		return fmt.Errorf("meta pages disagree on the page size (%d, %d)", pageSize, m.pageSize)
	}
	if m.pgid < 3 {
		return fmt.Errorf("high-water mark of %d pages is impossible", m.pgid)
	}
	if m.pgid > size/pageSize {
		return fmt.Errorf("file is truncated: %d bytes, but its meta page records %d pages of %d bytes",
			size, m.pgid, pageSize)
	}
	c := &boltChecker{f: f, m: m, pageSize: pageSize, state: make([]uint8, m.pgid)}
	c.state[0], c.state[1] = pageUsed, pageUsed
	if err := c.freelist(); err != nil {
		return err
	}
	if err := c.tree(m.root, 0); err != nil {
		return err
	}
	if m.freelist == boltNoFreelist {
		return nil // bbolt rebuilds the freelist by scanning; nothing to compare
	}
	for id, s := range c.state {
		if s == pageUnseen {
			return fmt.Errorf("page %d is neither in use nor free", id)
		}
	}
	return nil
}

const (
	pageUnseen uint8 = iota
	pageUsed
	pageFree
)

// boltChecker walks a bbolt file's pages; state records what each page
// below the high-water mark was found to be.
type boltChecker struct {
	f        io.ReaderAt
	m        boltMeta
	pageSize uint64
	state    []uint8
}

// page reads page id with its overflow pages, checking that they lie below
// the high-water mark and that the header carries the page's own ID.
func (c *boltChecker) page(id uint64, what string) ([]byte, error) {
	if id < 2 || id >= c.m.pgid {
		return nil, fmt.Errorf("%s page %d is outside 2..%d", what, id, c.m.pgid-1)
	}
	hdr := make([]byte, boltPageHeader)
	if _, err := c.f.ReadAt(hdr, int64(id*c.pageSize)); err != nil {
		return nil, fmt.Errorf("%s page %d: %w", what, id, err)
	}
	if got := boltOrder.Uint64(hdr); got != id {
		return nil, fmt.Errorf("%s page %d carries the ID %d", what, id, got)
	}
	overflow := uint64(boltOrder.Uint32(hdr[12:]))
	if id+overflow >= c.m.pgid {
		return nil, fmt.Errorf("%s page %d: %d overflow pages run past the high-water mark %d", what, id, overflow, c.m.pgid)
	}
	buf := make([]byte, (overflow+1)*c.pageSize)
	if _, err := c.f.ReadAt(buf, int64(id*c.pageSize)); err != nil {
		return nil, fmt.Errorf("%s page %d: %w", what, id, err)
	}
	return buf, nil
}

// mark records pages id..id+n as s, refusing a page seen twice.
func (c *boltChecker) mark(id, n uint64, s uint8, what string) error {
	for p := id; p <= id+n; p++ {
		switch c.state[p] {
		case pageUnseen:
			c.state[p] = s
		case pageFree:
			return fmt.Errorf("%s page %d is also on the freelist", what, p)
		default:
			return fmt.Errorf("%s page %d is referenced twice", what, p)
		}
	}
	return nil
}

// freelist reads the freelist page and marks its pages free.
func (c *boltChecker) freelist() error {
	if c.m.freelist == boltNoFreelist {
		return nil
	}
	buf, err := c.page(c.m.freelist, "freelist")
	if err != nil {
		return err
	}
	if flags := boltOrder.Uint16(buf[8:]); flags&boltFreelistFlag == 0 {
		return fmt.Errorf("freelist page %d has type %#x", c.m.freelist, flags)
	}
	ids := buf[boltPageHeader:]
	count := uint64(boltOrder.Uint16(buf[10:]))
	if count == boltFreelistLarge { // the real count is the first element
		count = boltOrder.Uint64(ids)
		ids = ids[8:]
	}
	if count > uint64(len(ids))/8 {
		return fmt.Errorf("freelist page %d claims %d free pages, more than it holds", c.m.freelist, count)
	}
	free := make([]uint64, count)
	for i := range free {
		free[i] = boltOrder.Uint64(ids[8*i:])
		if free[i] < 2 || free[i] >= c.m.pgid {
			return fmt.Errorf("freelist page %d lists page %d, outside 2..%d", c.m.freelist, free[i], c.m.pgid-1)
		}
		if c.state[free[i]] == pageFree {
			return fmt.Errorf("page %d is freed twice", free[i])
		}
		c.state[free[i]] = pageFree
	}
	return c.mark(c.m.freelist, uint64(boltOrder.Uint32(buf[12:])), pageUsed, "freelist")
}

// tree checks the B+tree rooted at page id and every bucket nested in it.
func (c *boltChecker) tree(id uint64, depth int) error {
	if depth > boltMaxTreeDepth {
		return fmt.Errorf("tree deeper than %d levels at page %d", boltMaxTreeDepth, id)
	}
	buf, err := c.page(id, "tree")
	if err != nil {
		return err
	}
	if err := c.mark(id, uint64(boltOrder.Uint32(buf[12:])), pageUsed, "tree"); err != nil {
		return err
	}
	flags, count := boltOrder.Uint16(buf[8:]), int(boltOrder.Uint16(buf[10:]))
	switch {
	case flags&boltBranchFlag != 0:
		if count == 0 {
			return fmt.Errorf("branch page %d has no elements", id)
		}
		for i := 0; i < count; i++ {
			e := boltPageHeader + i*boltElemSize
			if e+boltElemSize > len(buf) {
				return fmt.Errorf("branch page %d: element %d lies outside the page", id, i)
			}
			pos, ksize := int(boltOrder.Uint32(buf[e:])), int(boltOrder.Uint32(buf[e+4:]))
			if e+pos+ksize > len(buf) || e+pos+ksize < e {
				return fmt.Errorf("branch page %d: key %d lies outside the page", id, i)
			}
			if err := c.tree(boltOrder.Uint64(buf[e+8:]), depth+1); err != nil {
				return err
			}
		}
		return nil
	case flags&boltLeafFlag != 0:
		return c.leaf(buf, fmt.Sprintf("leaf page %d", id), depth)
	default:
		return fmt.Errorf("tree page %d has type %#x, neither branch nor leaf", id, flags)
	}
}

// leaf checks a leaf page's elements (buf starts at its header; an inline
// bucket's page lives in its parent's value) and the buckets it holds.
func (c *boltChecker) leaf(buf []byte, where string, depth int) error {
	count := int(boltOrder.Uint16(buf[10:]))
	for i := 0; i < count; i++ {
		e := boltPageHeader + i*boltElemSize
		if e+boltElemSize > len(buf) {
			return fmt.Errorf("%s: element %d lies outside the page", where, i)
		}
		flags := boltOrder.Uint32(buf[e:])
		pos, ksize, vsize := uint64(boltOrder.Uint32(buf[e+4:])), uint64(boltOrder.Uint32(buf[e+8:])), uint64(boltOrder.Uint32(buf[e+12:]))
		end := uint64(e) + pos + ksize + vsize
		if end > uint64(len(buf)) {
			return fmt.Errorf("%s: element %d's key and value lie outside the page", where, i)
		}
		if flags&boltBucketLeaf == 0 {
			continue
		}
		v := buf[uint64(e)+pos+ksize : end]
		if len(v) < boltBucketHeader {
			return fmt.Errorf("%s: bucket %d's header is %d bytes", where, i, len(v))
		}
		if root := boltOrder.Uint64(v); root != 0 {
			if err := c.tree(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := v[boltBucketHeader:]
		if len(inline) < boltPageHeader || boltOrder.Uint16(inline[8:])&boltLeafFlag == 0 {
			return fmt.Errorf("%s: inline bucket %d is not a leaf page", where, i)
		}
		if depth+1 > boltMaxTreeDepth {
			return fmt.Errorf("%s: buckets nested deeper than %d levels", where, boltMaxTreeDepth)
		}
		if err := c.leaf(inline, where+" (inline bucket)", depth+1); err != nil {
			return err
		}
	}
	return nil
}

// Stable-store keys hashicorp/raft keeps as 8-byte integers (its on-disk
// format); raft-boltdb's GetUint64 panics on a shorter value.
var stableUint64Keys = []string{"CurrentTerm", "LastVoteTerm"}

// checkLogStore reads back every log entry and the stable store through
// raft-boltdb, after checkBoltFile has passed and the file is open: every
// index from the first to the last is present (except at or below snapIndex,
// the newest snapshot's index: a restored or installed snapshot takes an
// index that has no entry, and raft never reads entries a snapshot covers
// to rebuild state), decodes, and carries its own index; every command entry decodes as a state-machine entry (without
// being applied) and every configuration entry as a configuration; the
// stable store's integers are 8 bytes. bbolt keeps no checksum of values,
// so damage inside a record that still decodes cannot be seen (raft-wal
// checksums every record; raft-boltdb does not).
//
// The same check runs on raft-wal (after checkWAL); there a stable-store key
// that was never set reads as empty (walEmptyUnset), where raft-boltdb
// returns ErrKeyNotFound.
func checkLogStore(path string, store logStore, snapIndex uint64, walEmptyUnset bool) (err error) {
	defer func() {
		// A decoder handed garbage may panic; that is damage, not a crash.
		if r := recover(); r != nil {
			err = corrupt(path, fmt.Errorf("decoding a record panicked: %v", r))
		}
	}()
	for _, k := range stableUint64Keys {
		v, err := store.Get([]byte(k))
		if errors.Is(err, raftboltdb.ErrKeyNotFound) || (walEmptyUnset && err == nil && len(v) == 0) {
			continue
		}
		if err != nil {
			return corrupt(path, fmt.Errorf("stable store key %s: %w", k, err))
		}
		if len(v) != 8 {
			return corrupt(path, fmt.Errorf("stable store key %s holds %d bytes, not 8", k, len(v)))
		}
	}
	first, err := store.FirstIndex()
	if err != nil {
		return corrupt(path, fmt.Errorf("first log index: %w", err))
	}
	last, err := store.LastIndex()
	if err != nil {
		return corrupt(path, fmt.Errorf("last log index: %w", err))
	}
	if first == 0 {
		return nil // empty log
	}
	var l raft.Log
	for i := first; i <= last; i++ {
		l = raft.Log{}
		err := store.GetLog(i, &l)
		if errors.Is(err, raft.ErrLogNotFound) && i <= snapIndex {
			continue
		}
		if err != nil {
			return corrupt(path, fmt.Errorf("log entry %d (of %d..%d): %w", i, first, last, err))
		}
		if l.Index != i {
			return corrupt(path, fmt.Errorf("log entry %d records the index %d", i, l.Index))
		}
		switch l.Type {
		case raft.LogCommand:
			if err := fsm.CheckEntry(l.Data); err != nil {
				return corrupt(path, fmt.Errorf("log entry %d (term %d): %w", i, l.Term, err))
			}
		case raft.LogConfiguration:
			raft.DecodeConfiguration(l.Data) // panics on garbage; recovered above
		}
	}
	return nil
}

// checkSnapshots verifies every snapshot in dir/snapshots and returns the
// newest one's index (0 if none): its meta.json decodes and its state.bin
// has the recorded size and CRC-64; the newest one's image (the one raft
// restores) also decodes and passes the state machine's checks.
//
// Why here: when raft cannot open the newest snapshot (a CRC mismatch) it
// logs a warning and silently restores an older one, whose log entries may
// have been compacted away; and it skips a snapshot whose meta.json does
// not decode without a word. Either way the node would serve state older
// than what it acknowledged. An older snapshot's image is not decoded: raft
// restores it only if the newest fails, which these checks rule out, and
// decoding a million keys takes a second or more.
//
// It also returns the newest snapshot's decoded image and the CRC-64 of
// its file (nil, 0 if none), for fsm.Preload: Raft restores that snapshot
// next, and decoding it once rather than twice is a good part of a node's
// start.
func checkSnapshots(dir string) (newest uint64, img *fsm.Image, sum uint64, err error) {
	dirs, metas, err := listSnapshots(dir)
	if err != nil {
		return 0, nil, 0, err
	}
	// raft's order of preference: highest term, then index, then ID.
	first := -1
	for i, m := range metas {
		if first < 0 || cmpSnapshotMeta(m, metas[first]) > 0 {
			first = i
		}
	}
	for i, d := range dirs {
		index, im, crc, err := checkSnapshot(d, i == first)
		if err != nil {
			return 0, nil, 0, err
		}
		if i == first {
			img, sum = im, crc
		}
		newest = max(newest, index)
	}
	return newest, img, sum, nil
}

// listSnapshots returns the snapshot directories in dir and what their
// meta.json files record (zero for one that cannot be read: checkSnapshot
// reports it). raft ignores, and later removes, unfinished snapshots.
func listSnapshots(dir string) (dirs []string, metas []raft.SnapshotMeta, err error) {
	base := filepath.Join(dir, snapshotsDir)
	ents, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		d := filepath.Join(base, e.Name())
		meta, _ := readSnapshotMeta(d)
		dirs, metas = append(dirs, d), append(metas, meta.SnapshotMeta)
	}
	return dirs, metas, nil
}

// newestSnapshotIndex returns the highest index the snapshots' meta.json
// files record (0 if none can be read), without checking the snapshots:
// checkSnapshots does, and returns the same index when they pass.
func newestSnapshotIndex(dir string) uint64 {
	_, metas, _ := listSnapshots(dir)
	var newest uint64
	for _, m := range metas {
		newest = max(newest, m.Index)
	}
	return newest
}

// cmpSnapshotMeta orders snapshots as raft prefers them.
func cmpSnapshotMeta(a, b raft.SnapshotMeta) int {
	switch {
	case a.Term != b.Term:
		return cmp.Compare(a.Term, b.Term)
	case a.Index != b.Index:
		return cmp.Compare(a.Index, b.Index)
	}
	return strings.Compare(a.ID, b.ID)
}

// snapshotMeta is raft's fileSnapshotMeta: the SnapshotMeta fields and
// the CRC of state.bin.
type snapshotMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

// readSnapshotMeta decodes dir/meta.json.
func readSnapshotMeta(dir string) (snapshotMeta, error) {
	var meta snapshotMeta
	metaPath := filepath.Join(dir, "meta.json")
	raw, err := os.ReadFile(metaPath)
	if err != nil {
		return meta, corrupt(metaPath, err)
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return meta, corrupt(metaPath, err)
	}
	return meta, nil
}

// snapshotsDir is the directory raft's FileSnapshotStore keeps snapshots in,
// under the data directory.
const snapshotsDir = "snapshots"

// checkSnapshot verifies one snapshot directory (see checkSnapshots) and
// returns its index, its CRC-64 and, if decode, its decoded image.
func checkSnapshot(dir string, decode bool) (uint64, *fsm.Image, uint64, error) {
	statePath := filepath.Join(dir, "state.bin")
	meta, err := readSnapshotMeta(dir)
	if err != nil {
		return 0, nil, 0, err
	}
	f, err := os.Open(statePath)
	if err != nil {
		return 0, nil, 0, corrupt(statePath, err)
	}
	defer f.Close()
	crc := crc64.New(crc64.MakeTable(crc64.ECMA))
	counted := &countingReader{r: io.TeeReader(f, crc)}
	var img *fsm.Image
	var imgErr error
	if decode {
		img, imgErr = fsm.DecodeImage(counted)
	}
	// Drain what the image reader left, so the size and CRC cover the file.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return 0, nil, 0, corrupt(statePath, err)
	}
	if counted.n != meta.Size {
		return 0, nil, 0, corrupt(statePath, fmt.Errorf("%d bytes, but meta.json records %d", counted.n, meta.Size))
	}
	if got := crc.Sum(nil); string(got) != string(meta.CRC) {
		return 0, nil, 0, corrupt(statePath, fmt.Errorf("CRC-64 %x does not match the %x meta.json records", got, meta.CRC))
	}
	if imgErr != nil {
		return 0, nil, 0, corrupt(statePath, imgErr)
	}
	return meta.Index, img, binary.BigEndian.Uint64(crc.Sum(nil)), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
