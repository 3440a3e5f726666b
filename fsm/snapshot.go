package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// snapshotMagic and snapshotVersion open every snapshot, so that a snapshot
// from another program, or from a newer version, is refused rather than
// misread.
const (
	snapshotMagic   = "TDBSNAP"
	snapshotVersion = 1
)

// image is a point-in-time copy of the state, written by Persist:
//
//	magic, version, varint now, varint grants, reservations, denials,
//	uvarint nkeys, nkeys × (string key, varint last, varint interval),
//	uvarint nnodes, nnodes × (string id, string resp addr)
//
// where a string is a uvarint length and its bytes.
type image struct {
	now   int64
	stats Stats
	keys  []keyState
	nodes []Node
}

var _ raft.FSMSnapshot = (*image)(nil)

// Persist implements raft.FSMSnapshot.
func (img *image) Persist(sink raft.SnapshotSink) error {
	if err := img.writeTo(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
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
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	for _, v := range []int64{img.now, img.stats.Grants, img.stats.Reservations, img.stats.Denials} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(img.keys)))
	for _, k := range img.keys {
		b = appendString(b, k.key)
		b = binary.AppendVarint(b, k.last)
		b = binary.AppendVarint(b, k.interval)
		if len(b) > 32<<10 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	b = binary.AppendUvarint(b, uint64(len(img.nodes)))
	for _, n := range img.nodes {
		b = appendString(b, n.ID)
		b = appendString(b, n.RESPAddr)
	}
	if err := flush(); err != nil {
		return err
	}
	return w.Flush()
}

// Release implements raft.FSMSnapshot.
func (img *image) Release() {}

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
	if v := magic[len(snapshotMagic)]; v != snapshotVersion {
		return nil, fmt.Errorf("snapshot version %d: %w", v, ErrUnknownType)
	}
	sr := streamReader{r: br}
	img := &image{now: sr.varint()}
	img.stats = Stats{Grants: sr.varint(), Reservations: sr.varint(), Denials: sr.varint()}
	n := sr.uvarint()
	for i := uint64(0); i < n && sr.err == nil; i++ {
		img.keys = append(img.keys, keyState{key: sr.string(), last: sr.varint(), interval: sr.varint()})
	}
	n = sr.uvarint()
	for i := uint64(0); i < n && sr.err == nil; i++ {
		img.nodes = append(img.nodes, Node{ID: sr.string(), RESPAddr: sr.string()})
	}
	if sr.err != nil {
		return nil, sr.err
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after snapshot: %w", ErrCorrupt)
	}
	return img, nil
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
