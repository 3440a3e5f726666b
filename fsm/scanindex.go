package fsm

import (
	"math"
	"unsafe"
)

const (
	// indexBlock is how many ids a block of the scan index holds (1 KiB).
	// A bigger block moves more on an insert; a smaller one makes the
	// directory longer.
	indexBlock = 256
	// indexMerge is the count below which a block is merged with a
	// neighbour after a removal, when the two fit in three quarters of a
	// block: blocks then stay a quarter full or more on average whatever
	// is removed, without moving ids back and forth.
	indexMerge = indexBlock / 4
	// indexPoolBlocks is how many blocks one mapping holds (64 KiB).
	indexPoolBlocks = 64
	// interpolateProbes bounds the interpolation probes of find before
	// it searches by halves, so that hashes bunched by chance (or by
	// someone grinding keys) cost no more than a few extra probes.
	interpolateProbes = 3
)

// scanIndex orders the store's ids by (hash, key), for SCAN's cursor, KEYS
// and the snapshot walk: a sorted sequence of ids cut into blocks of up to
// indexBlock, the blocks in memory outside the Go heap (see allocOff),
// and a directory of blocks in order on it. Finding a position is a binary
// search over the blocks' first hashes, then a search within a block; inserting or
// removing moves at most one block's ids, and a full block is split in
// two.
//
// Why not a B-tree on the Go heap (as before): with a million keys its
// nodes took 8-9 MB of live heap, which the collector's headroom (the
// heap may grow to twice its live size between cycles) made up to 17 MB
// resident; here the blocks take 4-6 bytes a key (full after a restore,
// about two thirds full under random inserts) and are neither scanned nor
// doubled. The directory, a few thousand entries, is what stays on the
// heap.
//
// The directory keeps each block's first hash beside its number (first),
// so that the search over the blocks reads no record: a record is 48
// bytes somewhere in the chunks, and reading one for every step of that
// search was a cache miss each. It costs 8 bytes a block, a few
// hundredths of a byte a key.
type scanIndex struct {
	// hash and keyLess order ids: by hash, then, for equal hashes, by
	// keyLess (see store.indexHash and store.indexKeyLess; id 0 is the
	// probe). An id's hash never changes while it is indexed.
	hash    func(id uint32) uint64
	keyLess func(a, b uint32) bool
	mem     *offMem // where the blocks' mappings are recorded for release
	pool    [][]uint32
	dir     []uint32 // block numbers, in order
	first   []uint64 // first[i] is the hash of block dir[i]'s first id
	cnt     []uint16 // ids in each block, by block number
	free    []uint32 // block numbers given back
	n       int
}

func newScanIndex(hash func(id uint32) uint64, keyLess func(a, b uint32) bool, mem *offMem) *scanIndex {
	return &scanIndex{hash: hash, keyLess: keyLess, mem: mem}
}

// less is the index's order on ids.
func (x *scanIndex) less(a, b uint32) bool {
	ha, hb := x.hash(a), x.hash(b)
	if ha != hb {
		return ha < hb
	}
	return x.keyLess(a, b)
}

// notBefore reports whether id is not less than t, whose hash is th.
// Finding an id to delete meets the id itself: it is not less than
// itself, which needs no look at its key (a map lookup for a long one).
func (x *scanIndex) notBefore(id, t uint32, th uint64) bool {
	if h := x.hash(id); h != th {
		return h > th
	}
	return id == t || !x.keyLess(id, t)
}

// setFirst records the hash of block dir[di]'s first id, after a change
// that may have replaced it.
func (x *scanIndex) setFirst(di int) {
	x.first[di] = x.hash(x.block(x.dir[di])[0])
}

// Len returns how many ids the index holds.
func (x *scanIndex) Len() int { return x.n }

// block returns block b's ids, all indexBlock of them (cnt[b] in use).
func (x *scanIndex) block(b uint32) []uint32 {
	i := int(b%indexPoolBlocks) * indexBlock
	return x.pool[b/indexPoolBlocks][i : i+indexBlock : i+indexBlock]
}

func (x *scanIndex) newBlock() uint32 {
	if n := len(x.free); n > 0 {
		b := x.free[n-1]
		x.free = x.free[:n-1]
		return b
	}
	b := uint32(len(x.cnt))
	if int(b) == len(x.pool)*indexPoolBlocks {
		raw := allocOff(indexPoolBlocks * indexBlock * 4)
		x.mem.index = append(x.mem.index, raw)
		x.pool = append(x.pool, unsafe.Slice((*uint32)(unsafe.Pointer(&raw[0])), indexPoolBlocks*indexBlock))
	}
	x.cnt = append(x.cnt, 0)
	return b
}

func (x *scanIndex) dropBlock(di int) {
	b := x.dir[di]
	x.cnt[b] = 0
	x.free = append(x.free, b)
	x.dir = append(x.dir[:di], x.dir[di+1:]...)
	x.first = append(x.first[:di], x.first[di+1:]...)
}

// find returns the position of the first id not less than t: block di of
// the directory and pos within it, never the end of a block but the
// last's. When every id is less than t it is the end of the last block
// (or 0, 0 for an empty index).
func (x *scanIndex) find(t uint32) (di, pos int) {
	if len(x.dir) == 0 {
		return 0, 0
	}
	th := x.hash(t)
	// The first block whose first id is not less than t: its cached hash
	// decides, unless it equals t's (almost never).
	lo, hi := 0, len(x.dir)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if h := x.first[m]; h > th || (h == th && x.notBefore(x.block(x.dir[m])[0], t, th)) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	di = lo
	if di > 0 {
		di-- // ids from t on may sit after the previous block's first
	}
	b := x.dir[di]
	blk, n := x.block(b), int(x.cnt[b])
	lo, hi = 0, n
	// Keys' hashes are SHA-256, spread evenly, so where t's hash falls
	// between the hashes bounding the range says where to look: a few
	// such probes narrow a block to a handful of ids where a binary search
	// takes eight, each reading a record. The answer is the same either
	// way; only the probes differ.
	loH, hiH := x.first[di], uint64(math.MaxUint64)
	if di+1 < len(x.dir) {
		hiH = x.first[di+1]
	}
	for range interpolateProbes {
		if hi-lo <= 4 || th < loH || th >= hiH || hiH-loH < uint64(hi-lo) {
			break
		}
		m := lo + int(float64(th-loH)/float64(hiH-loH)*float64(hi-lo))
		m = min(max(m, lo), hi-1)
		if h := x.hash(blk[m]); h > th || (h == th && x.notBefore(blk[m], t, th)) {
			hi, hiH = m, h
		} else {
			lo, loH = m+1, h
		}
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.notBefore(blk[m], t, th) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	pos = lo
	if pos == n && di+1 < len(x.dir) {
		return di + 1, 0 // the next block's first is t or after it
	}
	return di, pos
}

// Set inserts id, which the index does not hold.
func (x *scanIndex) Set(id uint32) {
	x.n++
	if len(x.dir) == 0 {
		b := x.newBlock()
		x.block(b)[0], x.cnt[b] = id, 1
		x.dir = append(x.dir, b)
		x.first = append(x.first, x.hash(id))
		return
	}
	di, pos := x.find(id)
	b := x.dir[di]
	if x.cnt[b] == indexBlock {
		// Split: the upper half moves to a new block after this one.
		nb := x.newBlock()
		const half = indexBlock / 2
		copy(x.block(nb), x.block(b)[half:])
		x.cnt[b], x.cnt[nb] = half, indexBlock-half
		x.dir = append(x.dir, 0)
		copy(x.dir[di+2:], x.dir[di+1:])
		x.dir[di+1] = nb
		x.first = append(x.first, 0)
		copy(x.first[di+2:], x.first[di+1:])
		x.setFirst(di + 1)
		if pos > half {
			b, pos, di = nb, pos-half, di+1
		}
	}
	blk, n := x.block(b), int(x.cnt[b])
	copy(blk[pos+1:n+1], blk[pos:n])
	blk[pos] = id
	x.cnt[b]++
	if pos == 0 {
		x.first[di] = x.hash(id)
	}
}

// Delete removes id, which the index holds.
func (x *scanIndex) Delete(id uint32) {
	di, pos := x.find(id)
	b := x.dir[di]
	blk, n := x.block(b), int(x.cnt[b])
	if pos >= n || blk[pos] != id {
		// The store removes only ids it inserted, and their keys do not
		// change while indexed.
		panic("fsm: scan index lost an id")
	}
	copy(blk[pos:n-1], blk[pos+1:n])
	n--
	x.cnt[b] = uint16(n)
	x.n--
	if pos == 0 && n > 0 {
		x.setFirst(di)
	}
	switch {
	case n == 0:
		x.dropBlock(di)
	case n < indexMerge:
		// Merge with a neighbour when the two fit in three quarters of
		// a block.
		if di+1 < len(x.dir) && n+int(x.cnt[x.dir[di+1]]) <= indexBlock*3/4 {
			x.mergeNext(di)
		} else if di > 0 && n+int(x.cnt[x.dir[di-1]]) <= indexBlock*3/4 {
			x.mergeNext(di - 1)
		}
	}
}

// mergeNext moves the ids of the block after di's to the end of di's.
func (x *scanIndex) mergeNext(di int) {
	a, b := x.dir[di], x.dir[di+1]
	na, nb := int(x.cnt[a]), int(x.cnt[b])
	copy(x.block(a)[na:], x.block(b)[:nb])
	x.cnt[a] = uint16(na + nb)
	x.dropBlock(di + 1)
}

// Load appends id, which must not be less than any id held: the fast way
// to fill the index in order. Blocks are filled whole.
func (x *scanIndex) Load(id uint32) {
	x.n++
	if k := len(x.dir); k > 0 {
		if b := x.dir[k-1]; x.cnt[b] < indexBlock {
			x.block(b)[x.cnt[b]] = id
			x.cnt[b]++
			return
		}
	}
	b := x.newBlock()
	x.block(b)[0], x.cnt[b] = id, 1
	x.dir = append(x.dir, b)
	x.first = append(x.first, x.hash(id))
}

// Scan calls fn with every id in order until fn returns false.
func (x *scanIndex) Scan(fn func(id uint32) bool) { x.from(0, 0, fn) }

// Ascend calls fn with the ids in order from the first not less than t,
// until fn returns false. fn must not change the index.
func (x *scanIndex) Ascend(t uint32, fn func(id uint32) bool) {
	di, pos := x.find(t)
	x.from(di, pos, fn)
}

func (x *scanIndex) from(di, pos int, fn func(id uint32) bool) {
	for ; di < len(x.dir); di, pos = di+1, 0 {
		b := x.dir[di]
		blk, n := x.block(b), int(x.cnt[b])
		for ; pos < n; pos++ {
			if !fn(blk[pos]) {
				return
			}
		}
	}
}
