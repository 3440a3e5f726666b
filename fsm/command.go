package fsm

import (
	"encoding/binary"
	"fmt"
	"unsafe"
)

// EntryType is the first byte of every log entry this package writes. Types
// are numbered explicitly and only ever added, never renumbered or reused, so
// that a log written by an older version always decodes.
type EntryType uint8

const (
	// EntryBatch is a batch of commands applied at one cluster time.
	EntryBatch EntryType = 1
)

// entryBatchVersion is the payload version of EntryBatch this build writes
// and reads.
const entryBatchVersion = 1

// Op identifies a command inside a batch. Like EntryType, ops are numbered
// explicitly and only ever added.
type Op uint8

const (
	// OpAcquire is THROTTLE.ACQUIRE.
	OpAcquire Op = 1
	// OpReset is THROTTLE.RESET.
	OpReset Op = 2
	// OpSetNode records a member's RESP address.
	OpSetNode Op = 3
	// OpRemoveNode forgets a member's RESP address.
	OpRemoveNode Op = 4
	// OpAcquireEx is THROTTLE.ACQUIRE with a cost other than one slot or
	// an idempotency token; an Acquire without either is written as
	// OpAcquire, so logs stay as compact and as readable by older
	// versions as before.
	OpAcquireEx Op = 5
	// OpCancel is THROTTLE.CANCEL.
	OpCancel Op = 6
	// OpCellThrottle is CL.THROTTLE, redis-cell's GCRA limiter.
	OpCellThrottle Op = 7
	// OpFlushAll is FLUSHALL and FLUSHDB: every key of both types is
	// removed.
	OpFlushAll Op = 8
	// OpAcquireWindowed is OpAcquireEx with a token kept for a window of
	// its own (Acquire.TokenWindow).
	OpAcquireWindowed Op = 9
	// OpCancelWindowed is OpCancel with a token kept for a window of its
	// own (Cancel.TokenWindow).
	OpCancelWindowed Op = 10
	// OpAcquireSeq is OpAcquireEx identified by a forwarding session and
	// sequence number (Acquire.Session) instead of a token: key,
	// interval, max, slop, cost, session (8 bytes, little-endian),
	// uvarint seq, varint window.
	OpAcquireSeq Op = 11
	// OpAcquireNext is OpAcquireSeq for the command numbered right after
	// the entry's previous sequenced command (OpAcquireSeq, OpAcquireNext,
	// OpCancelSeq or OpCancelNext), in the same session with the same
	// window: key, interval, max, slop, cost. A forwarded proposal numbers
	// its commands consecutively, so most of an entry's sequenced commands
	// cost no bytes for their identity.
	OpAcquireNext Op = 12
	// OpCancelSeq is OpCancel identified by a forwarding session and
	// sequence number: key, valid_at, session (8 bytes), uvarint seq,
	// varint window.
	OpCancelSeq Op = 13
	// OpCancelNext is OpCancelSeq numbered as OpAcquireNext: key,
	// valid_at.
	OpCancelNext Op = 14
)

// seqRun is the forwarding session, number and window of an entry's
// latest sequenced command, which an OpAcquireNext or OpCancelNext
// continues.
type seqRun struct {
	session, seq uint64
	window       int64
}

// follows reports whether a sequenced command continues r (same session
// and window, the next number), and makes it r's latest.
func (r *seqRun) follows(session, seq uint64, window int64) bool {
	ok := r.session != 0 && session == r.session && seq == r.seq+1 && window == r.window
	*r = seqRun{session: session, seq: seq, window: window}
	return ok
}

// appendSeq writes a sequenced command's identity for OpAcquireSeq and
// OpCancelSeq.
func appendSeq(b []byte, session, seq uint64, window int64) []byte {
	b = binary.LittleEndian.AppendUint64(b, session)
	b = binary.AppendUvarint(b, seq)
	return binary.AppendVarint(b, window)
}

// appendNext writes c as OpAcquireNext or OpCancelNext when it is a
// sequenced command that continues run, and reports whether it did; a
// sequenced command that does not becomes run's latest either way.
func appendNext(dst []byte, c Command, run *seqRun) ([]byte, bool) {
	switch c := c.(type) {
	case Acquire:
		if !sequenced(c.Token, c.Session) || !run.follows(c.Session, c.Seq, c.TokenWindow) {
			return dst, false
		}
		dst = append(dst, byte(OpAcquireNext))
		dst = appendString(dst, c.Key)
		for _, v := range []int64{c.Interval, c.Max, c.Slop, c.Cost} {
			dst = binary.AppendVarint(dst, v)
		}
		return dst, true
	case Cancel:
		if !sequenced(c.Token, c.Session) || !run.follows(c.Session, c.Seq, c.TokenWindow) {
			return dst, false
		}
		dst = append(dst, byte(OpCancelNext))
		dst = appendString(dst, c.Key)
		return binary.AppendVarint(dst, c.ValidAt), true
	}
	return dst, false
}

// next reads the identity of an OpAcquireNext or OpCancelNext: the number
// after the entry's previous sequenced command.
func (d *decoder) next() (session, seq uint64, window int64) {
	if d.run.session == 0 && d.err == nil {
		d.fail("sequenced command continues none")
		return 0, 0, 0
	}
	d.run.seq++
	return d.run.session, d.run.seq, d.run.window
}

// seq reads the identity of an OpAcquireSeq or OpCancelSeq, which starts
// a run for the commands after it.
func (d *decoder) seq() (session, seq uint64, window int64) {
	if d.err == nil && len(d.buf) < 8 {
		d.fail("forwarding session of %d bytes", len(d.buf))
	}
	if d.err != nil {
		return 0, 0, 0
	}
	session = binary.LittleEndian.Uint64(d.buf)
	d.buf = d.buf[8:]
	if session == 0 {
		d.fail("forwarding session 0")
		return 0, 0, 0
	}
	seq, window = d.uvarint(), d.varint()
	d.run = seqRun{session: session, seq: seq, window: window}
	return session, seq, window
}

// Command is one state-changing command inside an Entry. It is implemented by
// Acquire, Reset, SetNode, RemoveNode, Cancel, CellThrottle and FlushAll.
type Command interface {
	// Op reports the command's type.
	Op() Op
	appendPayload(dst []byte) []byte
}

// Acquire takes a slot from the throttle of Key (THROTTLE.ACQUIRE). All
// values are milliseconds except Max, a count. Slop is explicit here: the
// server resolves the default (DefaultSlop) before proposing, so the log
// alone determines every answer.
type Acquire struct {
	Key      string
	Interval int64
	Max      int64
	Slop     int64
	// Cost is the number of consecutive slots taken (COST); 0 is read as
	// 1, so that an Acquire that does not say takes one slot.
	Cost int64
	// Token is the client's idempotency token (ID), or empty for none.
	Token string
	// TokenWindow is how long, in ms of cluster time, a granted call's
	// Token is remembered: 0 means TokenWindow, the most. A follower that
	// adds a token of its own to a forwarded call (so that it can resend
	// the call safely) asks for only as long as it may resend, so that a
	// busy follower's tokens do not fill every replica's memory for a
	// minute. Without a Token it changes nothing but the encoding, but for
	// a command with a Session, whose window it is.
	TokenWindow int64
	// Session and Seq, when Session is not 0 and there is no Token,
	// identify a command a follower forwards (see seqTable): the random
	// forwarding session of the follower's router and the command's
	// number in it. A granted call is remembered by them for TokenWindow
	// (0: the whole TokenWindow const), so that the follower can resend
	// it after an unknown outcome, as with a token, but without a random
	// string per command. A client's Token wins: with one, they are not
	// written.
	Session, Seq uint64
}

// Cancel gives back the newest grant of Key (THROTTLE.CANCEL) if its first
// slot is ValidAt: all the slots it took, so that the next caller gets its
// first slot. Token, if not empty, makes a retry of the same give-back
// (same key and token, within TokenWindow) answer as the first did
// without acting again.
type Cancel struct {
	Key     string
	ValidAt int64
	Token   string
	// TokenWindow is as Acquire.TokenWindow.
	TokenWindow int64
	// Session and Seq are as Acquire's.
	Session, Seq uint64
}

// Validate checks a Cancel's arguments without reference to any state.
// The error wraps ErrInvalidKey or ErrInvalidToken.
func (c Cancel) Validate() error {
	if err := ValidateKey(c.Key); err != nil {
		return err
	}
	if err := ValidateToken(c.Token); err != nil {
		return err
	}
	return ValidateTokenWindow(c.TokenWindow)
}

// Op implements Command.
func (c Cancel) Op() Op {
	if sequenced(c.Token, c.Session) {
		return OpCancelSeq
	}
	if c.windowed() {
		return OpCancelWindowed
	}
	return OpCancel
}

func (c Cancel) windowed() bool { return c.TokenWindow != 0 }

// appendPayload writes key, valid_at and token, and for
// OpCancelWindowed then the window; for OpCancelSeq, key, valid_at and
// the identity.
func (c Cancel) appendPayload(b []byte) []byte {
	b = appendString(b, c.Key)
	b = binary.AppendVarint(b, c.ValidAt)
	if c.Op() == OpCancelSeq {
		return appendSeq(b, c.Session, c.Seq, c.TokenWindow)
	}
	b = appendString(b, c.Token)
	if c.windowed() {
		b = binary.AppendVarint(b, c.TokenWindow)
	}
	return b
}

// Reset removes the state of Keys (THROTTLE.RESET).
type Reset struct {
	Keys []string
}

// SetNode records that member ID serves RESP at RESPAddr, so every node can
// find the leader's RESP port.
type SetNode struct {
	ID       string
	RESPAddr string
}

// RemoveNode forgets member ID.
type RemoveNode struct {
	ID string
}

// Op implements Command.
func (c Acquire) Op() Op {
	switch {
	case sequenced(c.Token, c.Session):
		return OpAcquireSeq
	case c.TokenWindow != 0:
		return OpAcquireWindowed
	case (c.Cost == 0 || c.Cost == 1) && c.Token == "":
		return OpAcquire
	}
	return OpAcquireEx
}

// Op implements Command.
func (Reset) Op() Op { return OpReset }

// Op implements Command.
func (SetNode) Op() Op { return OpSetNode }

// Op implements Command.
func (RemoveNode) Op() Op { return OpRemoveNode }

// appendPayload writes key, interval, max and slop, for OpAcquireEx and
// OpAcquireWindowed then cost and token, and for OpAcquireWindowed then
// the window; for OpAcquireSeq, then cost and the identity.
func (c Acquire) appendPayload(b []byte) []byte {
	b = appendString(b, c.Key)
	b = binary.AppendVarint(b, c.Interval)
	b = binary.AppendVarint(b, c.Max)
	b = binary.AppendVarint(b, c.Slop)
	op := c.Op()
	if op == OpAcquireSeq {
		b = binary.AppendVarint(b, c.Cost)
		return appendSeq(b, c.Session, c.Seq, c.TokenWindow)
	}
	if op == OpAcquireEx || op == OpAcquireWindowed {
		b = binary.AppendVarint(b, c.Cost)
		b = appendString(b, c.Token)
	}
	if op == OpAcquireWindowed {
		b = binary.AppendVarint(b, c.TokenWindow)
	}
	return b
}

func (c Reset) appendPayload(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(c.Keys)))
	for _, k := range c.Keys {
		b = appendString(b, k)
	}
	return b
}

func (c SetNode) appendPayload(b []byte) []byte {
	b = appendString(b, c.ID)
	return appendString(b, c.RESPAddr)
}

func (c RemoveNode) appendPayload(b []byte) []byte {
	return appendString(b, c.ID)
}

// Entry is the content of one Raft log entry: the cluster time stamped by
// the leader that proposed it (Unix ms) and the commands to apply, in order.
type Entry struct {
	Now      int64
	Commands []Command
}

// Encode returns the entry's wire form:
//
//	[EntryBatch][version][varint now][uvarint n] n × ([op][payload])
func (e Entry) Encode() []byte {
	b := make([]byte, 0, 16+32*len(e.Commands))
	return e.AppendEncode(b)
}

// AppendEncode appends the entry's wire form (see Encode) to dst.
func (e Entry) AppendEncode(dst []byte) []byte {
	dst = append(dst, byte(EntryBatch), entryBatchVersion)
	dst = binary.AppendVarint(dst, e.Now)
	dst = binary.AppendUvarint(dst, uint64(len(e.Commands)))
	var run seqRun
	for _, c := range e.Commands {
		var next bool
		if dst, next = appendNext(dst, c, &run); next {
			continue
		}
		dst = append(dst, byte(c.Op()))
		dst = c.appendPayload(dst)
	}
	return dst
}

// DecodeEntry parses an entry written by Encode. Errors wrap ErrCorrupt or
// ErrUnknownType.
func DecodeEntry(data []byte) (Entry, error) {
	return decodeEntry(data, false)
}

// CheckEntry reports whether DecodeEntry would decode data, with the error
// it would return, without building the entry: it reads the same grammar
// but keeps no strings or commands, so that a node can check every entry
// of a large log at start cheaply.
func CheckEntry(data []byte) error {
	_, err := decodeEntry(data, true)
	return err
}

// DecodeEntryIn is DecodeEntry for an entry held in a string, for a caller
// that decodes many small entries at once (the leader, the proposals of a
// forwarding request): the entry's commands are appended to dst, which it
// returns, and the entry's Commands are that part of it (capped at its
// length); its strings (keys, tokens) are substrings of data, not copies.
// So no allocation is made per string or per entry, and data stays
// reachable for as long as any of them is. On an error dst is returned
// unchanged.
func DecodeEntryIn(dst []Command, data string) (Entry, []Command, error) {
	start := len(dst)
	e, err := decodeEntryInto(dst, unsafe.Slice(unsafe.StringData(data), len(data)), false, data, nil)
	if err != nil {
		return Entry{}, dst[:start], err
	}
	dst = e.Commands
	if e.Commands = dst[start:len(dst):len(dst)]; len(e.Commands) == 0 {
		e.Commands = nil // as DecodeEntry
	}
	return e, dst, nil
}

func decodeEntry(data []byte, skip bool) (Entry, error) {
	return decodeEntryInto(nil, data, skip, "", nil)
}

// decodeEntryInto decodes data, appending its commands to dst (the
// returned entry's Commands are all of dst); src, if not empty, holds the
// same bytes as data, and strings are taken from it. With slab, every
// Acquire is appended to *slab and the command is a pointer to it
// (*Acquire), which Apply alone reads: boxing each Acquire into the
// Command interface was an allocation per command.
func decodeEntryInto(dst []Command, data []byte, skip bool, src string, slab *[]Acquire) (Entry, error) {
	if len(data) < 2 {
		return Entry{}, fmt.Errorf("entry of %d bytes: %w", len(data), ErrCorrupt)
	}
	if EntryType(data[0]) != EntryBatch {
		return Entry{}, fmt.Errorf("entry type %d: %w", data[0], ErrUnknownType)
	}
	if data[1] != entryBatchVersion {
		return Entry{}, fmt.Errorf("batch version %d: %w", data[1], ErrUnknownType)
	}
	d := decoder{buf: data[2:], skip: skip, slab: slab}
	if src != "" {
		d.src = src[2:]
	}
	e := Entry{Now: d.varint()}
	n := d.count()
	if dst != nil {
		e.Commands = dst
	} else if n > 0 && !skip {
		// count bounds n by the bytes left, so this cannot be made huge.
		e.Commands = make([]Command, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		if c := d.command(); !skip {
			e.Commands = append(e.Commands, c)
		}
	}
	if d.err == nil && len(d.buf) != 0 {
		d.fail("%d trailing bytes", len(d.buf))
	}
	if d.err != nil {
		return Entry{}, d.err
	}
	return e, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads varints and strings from a buffer, remembering the first
// error so that callers can check once at the end.
type decoder struct {
	buf  []byte
	err  error
	skip bool   // read, keep nothing (CheckEntry): strings are "", commands nil
	src  string // if set, the bytes buf started as: strings are taken from it (DecodeEntryIn)
	run  seqRun // the entry's latest sequenced command (OpAcquireNext)
	// slab, if set, receives the Acquires, which are kept as pointers to
	// it (see decodeEntryInto).
	slab *[]Acquire
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format+": %w", append(args, ErrCorrupt)...)
	}
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads an element count, rejecting counts that could not possibly fit
// in the remaining bytes (each element takes at least one), so that a corrupt
// count never drives a huge allocation.
func (d *decoder) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.fail("count %d exceeds %d remaining bytes", n, len(d.buf))
		return 0
	}
	return n
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.buf)) {
		d.fail("string of %d bytes, %d remaining", n, len(d.buf))
		return ""
	}
	var s string
	switch {
	case d.skip:
	case d.src != "":
		off := len(d.src) - len(d.buf) // buf is only ever cut from the front
		s = d.src[off : off+int(n)]
	default:
		s = string(d.buf[:n])
	}
	d.buf = d.buf[n:]
	return s
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) == 0 {
		d.fail("unexpected end")
		return 0
	}
	b := d.buf[0]
	d.buf = d.buf[1:]
	return b
}

// keep and keepCancel return the command read, or nil when skipping, so
// that a skipping decoder does not box the most common commands.
func (d *decoder) keep(a Acquire) Command {
	if d.skip {
		return nil
	}
	if d.slab != nil {
		// Were the slab to grow, the pointers already handed out would
		// still point to the old array, whose values stay as they are.
		*d.slab = append(*d.slab, a)
		return &(*d.slab)[len(*d.slab)-1]
	}
	return a
}

func (d *decoder) keepCancel(c Cancel) Command {
	if d.skip {
		return nil
	}
	return c
}

func (d *decoder) command() Command {
	op := Op(d.byte())
	if d.err != nil {
		return nil
	}
	switch op {
	case OpAcquire:
		a := Acquire{Key: d.string(), Interval: d.varint(), Max: d.varint(), Slop: d.varint()}
		return d.keep(a)
	case OpAcquireEx:
		a := Acquire{Key: d.string(), Interval: d.varint(), Max: d.varint(), Slop: d.varint(),
			Cost: d.varint(), Token: d.string()}
		return d.keep(a)
	case OpAcquireWindowed:
		a := Acquire{Key: d.string(), Interval: d.varint(), Max: d.varint(), Slop: d.varint(),
			Cost: d.varint(), Token: d.string(), TokenWindow: d.varint()}
		return d.keep(a)
	case OpAcquireSeq, OpAcquireNext:
		a := Acquire{Key: d.string(), Interval: d.varint(), Max: d.varint(), Slop: d.varint(), Cost: d.varint()}
		if op == OpAcquireSeq {
			a.Session, a.Seq, a.TokenWindow = d.seq()
		} else {
			a.Session, a.Seq, a.TokenWindow = d.next()
		}
		return d.keep(a)
	case OpCancelSeq, OpCancelNext:
		c := Cancel{Key: d.string(), ValidAt: d.varint()}
		if op == OpCancelSeq {
			c.Session, c.Seq, c.TokenWindow = d.seq()
		} else {
			c.Session, c.Seq, c.TokenWindow = d.next()
		}
		return d.keepCancel(c)
	case OpReset:
		n := d.count()
		var keys []string
		if !d.skip {
			keys = make([]string, 0, n)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			if k := d.string(); !d.skip {
				keys = append(keys, k)
			}
		}
		return Reset{Keys: keys}
	case OpSetNode:
		return SetNode{ID: d.string(), RESPAddr: d.string()}
	case OpCancel:
		c := Cancel{Key: d.string(), ValidAt: d.varint(), Token: d.string()}
		return d.keepCancel(c)
	case OpCancelWindowed:
		c := Cancel{Key: d.string(), ValidAt: d.varint(), Token: d.string(), TokenWindow: d.varint()}
		return d.keepCancel(c)
	case OpRemoveNode:
		return RemoveNode{ID: d.string()}
	case OpCellThrottle:
		return CellThrottle{Key: d.string(), MaxBurst: d.varint(), Count: d.varint(),
			Period: d.varint(), Quantity: d.varint()}
	case OpFlushAll:
		return FlushAll{}
	default:
		if d.err == nil {
			d.err = fmt.Errorf("command op %d: %w", op, ErrUnknownType)
		}
		return nil
	}
}
