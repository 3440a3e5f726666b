package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft-wal/metadb"
	"github.com/hashicorp/raft-wal/segment"
	"github.com/hashicorp/raft-wal/types"
)

// Why raft-wal needs a check of its own: its CRCs are per write batch (a
// commit frame closes each StoreLogs call), but it verifies only the last
// batch of the tail segment when it opens, and never verifies a record it
// reads. Tested with v0.4.0 (walcheck_test.go): a flipped byte inside an
// earlier batch is served as it is; a damaged frame header in the tail, or
// a tail segment cut short, is taken for a torn last write and everything
// after it is dropped without a word, although those entries were fsynced
// and acknowledged. checkWAL verifies every batch's CRC in every segment the
// metadata lists, and tells a torn last write (legitimate after a crash: the
// write was never acknowledged) from damage by looking for a complete,
// checksummed batch after the bad spot.

// Layout of a raft-wal v0.4.0 segment file (segment/format.go): a 32-byte
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
func checkWAL(wdir string) error {
	metaPath := filepath.Join(wdir, metadb.FileName)
	if err := checkBoltFile(metaPath); err != nil {
		return err
	}
	var db metadb.BoltMetaDB
	state, err := db.Load(wdir)
	if cerr := db.Close(); err == nil && cerr != nil && !errors.Is(cerr, metadb.ErrUnintialized) {
		err = cerr
	}
	if err != nil {
		return corrupt(metaPath, err)
	}
	for i, si := range state.Segments {
		tail := si.SealTime.IsZero()
		if tail && i != len(state.Segments)-1 {
			return corrupt(metaPath, fmt.Errorf("unsealed segment %d is not the last", si.ID))
		}
		if err := checkSegment(filepath.Join(wdir, segment.FileName(si)), si, tail); err != nil {
			return err
		}
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
// the complete, checksummed batches, whether the last of them carried the
// index frame, where the walk stopped, and why (empty: it met zeros at a
// frame boundary or the end of the data).
func walkBatches(b []byte, off, crcStart int) (entries int, sealed bool, stop int, why string) {
	pending, pendingIndex := 0, false
	for {
		if off+walFrameHeader > len(b) {
			if off < len(b) || pending > 0 {
				return entries, sealed, off, "the file ends inside a frame"
			}
			return entries, sealed, off, ""
		}
		h := b[off : off+walFrameHeader]
		if binary.LittleEndian.Uint64(h) == 0 {
			if pending > 0 || pendingIndex {
				return entries, sealed, off, "a batch has no commit frame"
			}
			return entries, sealed, off, ""
		}
		f, ok := parseWALFrame(h)
		if !ok {
			return entries, sealed, off, fmt.Sprintf("invalid frame header %x", h)
		}
		switch f.typ {
		case walFrameCommit:
			if got := crc32.Checksum(b[crcStart:off], walCRC); got != f.crc {
				return entries, sealed, off, fmt.Sprintf("CRC-32C %08x of the batch ending here does not match the recorded %08x", got, f.crc)
			}
			entries += pending
			sealed = sealed || pendingIndex
			pending, pendingIndex = 0, false
			off += walFrameHeader
			crcStart = off
		default:
			end := off + walFrameSize(f.length)
			if end > len(b) {
				return entries, sealed, off, "the file ends inside a frame"
			}
			if f.typ == walFrameEntry {
				pending++
			} else {
				pendingIndex = true
			}
			off = end
		}
	}
}

// checkSegment verifies one segment file against its metadata si.
//
// A sealed segment must hold exactly its entries (base index to max index)
// in checksummed batches, the last with the index frame. A tail segment's
// batches must all check, except that a last write torn by a crash may
// follow them: bytes after the last good batch are accepted only if no
// complete, checksummed batch follows (which would prove entries were lost
// in between). raft-wal preallocates a segment to its size limit, so a
// tail file shorter than that with data in it has been cut.
func checkSegment(path string, si types.SegmentInfo, tail bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && tail {
		// raft-wal records a new tail segment before it creates the file,
		// and creates it again after a crash in between; it holds nothing
		// acknowledged until its first fsync.
		return nil
	}
	if err != nil {
		return corrupt(path, err)
	}
	if len(b) == 0 && tail {
		return nil // created, not yet preallocated or written
	}
	if len(b) < walFileHeaderLen {
		return corrupt(path, fmt.Errorf("%d bytes, shorter than a segment header", len(b)))
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
	entries, sealed, stop, why := walkBatches(b, walFileHeaderLen, 0)
	if entries > 0 || sealed {
		if err := header(); err != nil {
			return corrupt(path, err)
		}
	}
	if !tail {
		want := int(si.MaxIndex - si.BaseIndex + 1)
		switch {
		case why != "":
			return corrupt(path, fmt.Errorf("sealed segment, at offset %d: %s", stop, why))
		case !sealed:
			return corrupt(path, fmt.Errorf("sealed segment has no index frame"))
		case entries != want:
			return corrupt(path, fmt.Errorf("sealed segment holds %d entries, the metadata %d (indexes %d..%d)", entries, want, si.BaseIndex, si.MaxIndex))
		}
		return nil
	}
	if si.SizeLimit > 0 && len(b) < int(si.SizeLimit) && (entries > 0 || why != "") {
		return corrupt(path, fmt.Errorf("segment is truncated: %d bytes of the %d it was created with", len(b), si.SizeLimit))
	}
	if why == "" {
		return nil
	}
	// Something other than zeros follows the last good batch: a torn
	// last write, unless a complete batch lies beyond it.
	for p := stop + walFrameHeader; p+walFrameHeader <= len(b); p += walFrameHeader {
		if n, _, _, _ := walkBatches(b[:batchEnd(b, p)], p, p); n > 0 {
			return corrupt(path, fmt.Errorf("tail segment is damaged at offset %d (%s), but checksummed entries follow at offset %d: acknowledged entries would be lost", stop, why, p))
		}
	}
	return nil
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
