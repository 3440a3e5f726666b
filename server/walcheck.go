package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// Why raft-wal needs a check of its own: its CRCs are per write batch (a
// commit frame closes each StoreLogs call), but it verifies only the last
// batch of the tail segment when it opens, and never verifies a record it
// reads. Tested with v0.4.0 (walcheck_test.go; v0.4.2 opens and reads a
// segment the same way): a flipped byte inside an earlier batch is served
// as it is; a damaged frame header in the tail, or a tail segment cut
// short, is taken for a torn last write and everything after it is dropped
// without a word, although those entries were fsynced and acknowledged. checkWAL verifies every batch's CRC in every segment the
// metadata lists, and tells a torn last write (legitimate after a crash: the
// write was never acknowledged) from damage by looking for a complete,
// checksummed batch after the bad spot.

// Layout of a raft-wal v0.4 segment file (segment/format.go): a 32-byte
// header (magic, version, base index, segment ID, codec), then 8-byte
// aligned frames, each an 8-byte header (type; three zero bytes; length, or
// for a commit frame the CRC-32C of everything since the previous commit
// frame, the file header included for the first) and a payload padded to 8
// bytes. A sealed segment ends with an index frame and its commit.
const (
	walFileHeaderLen = 32
	walMagic         = 0x58eb6b0d
	walFrameHeader   = 8
	walFrameEntry    = 1
	walFrameIndex    = 2
	walFrameCommit   = 3
	walMaxEntry      = 64 << 20 // segment.MaxEntrySize
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

// checkWAL verifies the raft-wal directory wdir before raft-wal opens it:
// its bbolt metadata file's structure (checkBoltFile) and every segment the
// metadata lists (checkSegment). The caller holds wdir's lock.
//
// If the file of the segment the metadata lists as the open tail is
// sealed (a seal raft-wal did not get to record, see finishSeal), it also
// returns the metadata with that seal recorded and a new tail after it, as
// raft-wal would have written it; otherwise nil.
func checkWAL(wdir string) (sealed *types.PersistentState, err error) {
	metaPath := filepath.Join(wdir, metadb.FileName)
	if err := checkBoltFile(metaPath); err != nil {
		return nil, err
	}
	var db metadb.BoltMetaDB
	state, err := db.Load(wdir)
	if cerr := db.Close(); err == nil && cerr != nil && !errors.Is(cerr, metadb.ErrUnintialized) {
		err = cerr
	}
	if err != nil {
		return nil, corrupt(metaPath, err)
	}
	for i, si := range state.Segments {
		tail := si.SealTime.IsZero()
		if tail && i != len(state.Segments)-1 {
			return nil, corrupt(metaPath, fmt.Errorf("unsealed segment %d is not the last", si.ID))
		}
		path := filepath.Join(wdir, segment.FileName(si))
		entries, indexStart, err := checkSegment(path, si, tail)
		if err != nil {
			return nil, err
		}
		if !tail || indexStart == 0 {
			continue
		}
		if entries == 0 {
			// raft-wal seals a segment only after writing entries to it.
			return nil, corrupt(path, fmt.Errorf("open tail segment is sealed but holds no entries"))
		}
		si.SealTime = time.Now()
		si.MaxIndex = si.BaseIndex + uint64(entries) - 1
		si.IndexStart = indexStart
		state.Segments[i] = si
		state.Segments = append(state.Segments, types.SegmentInfo{
			ID:         state.NextSegmentID,
			BaseIndex:  si.MaxIndex + 1,
			MinIndex:   si.MaxIndex + 1,
			SizeLimit:  si.SizeLimit,
			Codec:      si.Codec,
			CreateTime: si.SealTime,
		})
		state.NextSegmentID++
		return &state, nil
	}
	return nil, nil
}

// finishSeal commits state, from checkWAL, to wdir's metadata: it records
// a seal raft-wal made and did not record, and a new, empty tail segment
// after it (raft-wal creates its file when it opens). The caller holds
// wdir's lock.
//
// Why: raft-wal seals a segment by writing its index frame, fsynced, and
// records the seal in its metadata afterwards: when a segment fills, the
// index goes out with the batch that fills it and the metadata is updated
// in the background; at a tail truncation (a follower dropping entries a
// new leader does not have) it force-seals the segment, then commits the
// metadata. A node killed in between leaves a sealed file listed as the
// open tail, and raft-wal (v0.4.2) reopens it for appending and refuses
// every write with "segment is sealed", for good. Recording the seal is
// what raft-wal would have done next. After a truncation's seal the
// segment keeps the entries the truncation was deleting: the log is as it
// was before that DeleteRange, which had not returned, so Raft relied on
// nothing after it and deletes them again.
func finishSeal(wdir string, state types.PersistentState) error {
	var db metadb.BoltMetaDB
	if _, err := db.Load(wdir); err != nil {
		db.Close()
		return fmt.Errorf("record the seal of the tail segment: %w", err)
	}
	err := db.CommitState(state)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record the seal of the tail segment: %w", err)
	}
	return nil
}

// walFrame is one frame found walking a segment.
type walFrame struct {
	typ    uint8
	length uint32 // entry and index frames
	crc    uint32 // commit frames
}

// parseWALFrame decodes a frame header; ok is false for anything raft-wal
// would not have written (zeros included).
func parseWALFrame(b []byte) (walFrame, bool) {
	if len(b) < walFrameHeader || b[1] != 0 || b[2] != 0 || b[3] != 0 {
		return walFrame{}, false
	}
	v := binary.LittleEndian.Uint32(b[4:])
	switch b[0] {
	case walFrameEntry, walFrameIndex:
		return walFrame{typ: b[0], length: v}, v <= walMaxEntry
	case walFrameCommit:
		return walFrame{typ: b[0], crc: v}, true
	}
	return walFrame{}, false
}

func walFrameSize(length uint32) int { return walFrameHeader + int(length+7)&^7 }

// walkBatches walks the write batches of a segment's bytes from off, where
// a batch starts whose CRC begins at crcStart. It returns the entries of
// the complete, checksummed batches, where the index of a sealed segment
// starts (the offset after its frame header, as raft-wal records it in
// SegmentInfo.IndexStart; 0 if no complete batch carried an index frame),
// where the walk stopped, and why (empty: it met zeros at a frame boundary
// or the end of the data).
func walkBatches(b []byte, off, crcStart int) (entries int, indexStart uint64, stop int, why string) {
	pending, pendingIndex := 0, uint64(0)
	for {
		if off+walFrameHeader > len(b) {
			if off < len(b) || pending > 0 {
				return entries, indexStart, off, "the file ends inside a frame"
			}
			return entries, indexStart, off, ""
		}
		h := b[off : off+walFrameHeader]
		if binary.LittleEndian.Uint64(h) == 0 {
			if pending > 0 || pendingIndex != 0 {
				return entries, indexStart, off, "a batch has no commit frame"
			}
			return entries, indexStart, off, ""
		}
		f, ok := parseWALFrame(h)
		if !ok {
			return entries, indexStart, off, fmt.Sprintf("invalid frame header %x", h)
		}
		switch f.typ {
		case walFrameCommit:
			if got := crc32.Checksum(b[crcStart:off], walCRC); got != f.crc {
				return entries, indexStart, off, fmt.Sprintf("CRC-32C %08x of the batch ending here does not match the recorded %08x", got, f.crc)
			}
			entries += pending
			if pendingIndex != 0 {
				indexStart = pendingIndex
			}
			pending, pendingIndex = 0, 0
			off += walFrameHeader
			crcStart = off
		default:
			end := off + walFrameSize(f.length)
			if end > len(b) {
				return entries, indexStart, off, "the file ends inside a frame"
			}
			if f.typ == walFrameEntry {
				pending++
			} else {
				pendingIndex = uint64(off + walFrameHeader)
			}
			off = end
		}
	}
}

// checkSegment verifies one segment file against its metadata si, and
// returns the entries in its complete batches and where its index starts
// (0 if it has none).
//
// A sealed segment must hold its entries (base index to max index) in
// checksummed batches, the last with the index frame where the metadata
// says it starts. It may hold more: raft-wal seals the tail segment where
// it stands when Raft deletes the log's tail (a follower overwriting
// entries a new leader does not have), records the new max index in the
// metadata, and reads no further than that. A tail segment's
// batches must all check, except that a last write torn by a crash may
// follow them: bytes after the last good batch are accepted only if no
// complete, checksummed batch follows (which would prove entries were lost
// in between). raft-wal preallocates a segment to its size limit, so a
// tail file shorter than that with data in it has been cut.
func checkSegment(path string, si types.SegmentInfo, tail bool) (entries int, indexStart uint64, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && tail {
		// raft-wal records a new tail segment before it creates the file,
		// and creates it again after a crash in between; it holds nothing
		// acknowledged until its first fsync.
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, corrupt(path, err)
	}
	if len(b) == 0 && tail {
		return 0, 0, nil // created, not yet preallocated or written
	}
	if len(b) < walFileHeaderLen {
		return 0, 0, corrupt(path, fmt.Errorf("%d bytes, shorter than a segment header", len(b)))
	}
	header := func() error {
		if binary.LittleEndian.Uint32(b) != walMagic || b[7] != 0 {
			return fmt.Errorf("segment header is not raft-wal's")
		}
		if base, id := binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]); base != si.BaseIndex || id != si.ID {
			return fmt.Errorf("segment header records base index %d and ID %d, the metadata %d and %d", base, id, si.BaseIndex, si.ID)
		}
		return nil
	}
	entries, indexStart, stop, why := walkBatches(b, walFileHeaderLen, 0)
	fail := func(err error) (int, uint64, error) { return 0, 0, corrupt(path, err) }
	if entries > 0 || indexStart != 0 {
		if err := header(); err != nil {
			return fail(err)
		}
	}
	if !tail {
		want := int(si.MaxIndex - si.BaseIndex + 1)
		switch {
		case why != "":
			return fail(fmt.Errorf("sealed segment, at offset %d: %s", stop, why))
		case indexStart == 0:
			// raft-wal before v0.4.1 sealed a segment at a tail truncation
			// without writing its index, and could not read it after a
			// restart (hashicorp/raft-wal#31).
			return fail(fmt.Errorf("sealed segment has no index frame (raft-wal before v0.4.1 left one after a tail truncation, and cannot read its entries)"))
		case indexStart != si.IndexStart:
			return fail(fmt.Errorf("sealed segment's index starts at offset %d, the metadata says %d", indexStart, si.IndexStart))
		case entries < want:
			return fail(fmt.Errorf("sealed segment holds %d entries, the metadata %d (indexes %d..%d)", entries, want, si.BaseIndex, si.MaxIndex))
		}
		return entries, indexStart, nil
	}
	if si.SizeLimit > 0 && len(b) < int(si.SizeLimit) && (entries > 0 || why != "") {
		return fail(fmt.Errorf("segment is truncated: %d bytes of the %d it was created with", len(b), si.SizeLimit))
	}
	if why == "" {
		return entries, indexStart, nil
	}
	// Something other than zeros follows the last good batch: a torn
	// last write, unless a complete batch lies beyond it.
	for p := stop + walFrameHeader; p+walFrameHeader <= len(b); p += walFrameHeader {
		if n, _, _, _ := walkBatches(b[:batchEnd(b, p)], p, p); n > 0 {
			return fail(fmt.Errorf("tail segment is damaged at offset %d (%s), but checksummed entries follow at offset %d: acknowledged entries would be lost", stop, why, p))
		}
	}
	return entries, indexStart, nil
}

// batchEnd bounds the search for one batch starting at p: up to and
// including its first commit frame, or the data's end.
func batchEnd(b []byte, p int) int {
	for off := p; off+walFrameHeader <= len(b); {
		f, ok := parseWALFrame(b[off:])
		if !ok {
			return off
		}
		if f.typ == walFrameCommit {
			return off + walFrameHeader
		}
		off += walFrameSize(f.length)
	}
	return len(b)
}
