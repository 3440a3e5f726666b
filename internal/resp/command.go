package resp

import (
	"errors"
	"fmt"
	"io"
)

// Limits on what one client may send, with Redis's defaults. A
// [CommandReader] enforces them while it reads, so that no input can make it
// allocate more than about twice what the client actually sent, spin, or
// recurse.
const (
	// DefaultMaxBulkLen is Redis's proto-max-bulk-len: the largest
	// argument an authenticated client may send.
	DefaultMaxBulkLen = 512 << 20
	// DefaultQueryBufferLimit is Redis's client-query-buffer-limit: the
	// most a client may have buffered towards commands not yet complete.
	DefaultQueryBufferLimit = 1 << 30
	// MaxInlineLen bounds an inline (telnet-style) command line and every
	// length header, as Redis's PROTO_INLINE_MAX_SIZE does.
	MaxInlineLen = 64 << 10
	// MaxMultibulkLen is the largest argument count Redis accepts (INT_MAX).
	MaxMultibulkLen = 1<<31 - 1
	// UnauthMaxMultibulkLen and UnauthMaxBulkLen are the much smaller
	// limits Redis applies before a client has authenticated: nothing a
	// client may do then (AUTH, HELLO, QUIT) needs more.
	UnauthMaxMultibulkLen = 10
	UnauthMaxBulkLen      = 16 << 10
)

// Errors a [CommandReader] returns. Every protocol violation is a
// *[ProtocolError] that wraps [ErrProtocol] and, for a violated limit,
// [ErrLimit]; a client whose incomplete commands exceed the query buffer
// limit gets [ErrQueryBufferLimit] (wrapping both).
var (
	// ErrLimit marks a protocol error caused by a limit rather than by
	// malformed syntax.
	ErrLimit = errors.New("limit exceeded")
	// ErrQueryBufferLimit means the client had more bytes of incomplete
	// commands buffered than the query buffer limit allows. Redis closes
	// such a client without a reply.
	ErrQueryBufferLimit = errors.New("query buffer limit reached")
)

// ProtocolError is a client's violation of the RESP request protocol.
// Reason is Redis's wording after "Protocol error: ".
type ProtocolError struct {
	Reason string
	limit  bool
	qbuf   bool
}

// Error implements error: Redis's "Protocol error: ..." wording.
func (e *ProtocolError) Error() string { return "Protocol error: " + e.Reason }

// Unwrap lets errors.Is find ErrProtocol, and ErrLimit or
// ErrQueryBufferLimit when they apply.
func (e *ProtocolError) Unwrap() []error {
	errs := []error{ErrProtocol}
	if e.limit || e.qbuf {
		errs = append(errs, ErrLimit)
	}
	if e.qbuf {
		errs = append(errs, ErrQueryBufferLimit)
	}
	return errs
}

func syntaxErr(reason string) error { return &ProtocolError{Reason: reason} }
func limitErr(reason string) error  { return &ProtocolError{Reason: reason, limit: true} }

// CommandLimits configures a [CommandReader]. Zero fields take the defaults
// above.
type CommandLimits struct {
	MaxBulkLen       int64 // proto-max-bulk-len
	QueryBufferLimit int64 // client-query-buffer-limit
}

// CommandReader reads client commands, multibulk (`*2\r\n$4\r\nPING...`) or
// inline (`PING\r\n`), from a connection, the way Redis's request parser
// does, with its error texts and limits.
//
// It is built so that hostile input is cheap: parsing is incremental (a
// command that arrives in pieces is never scanned twice), nothing is
// allocated for a length a client announces but has not sent, a count
// cannot make it loop, and the bytes buffered for incomplete commands are
// capped. Arguments of returned commands point into buffers the reader never
// writes again, so they stay valid for as long as the caller keeps them.
type CommandReader struct {
	r      io.Reader
	limits CommandLimits

	// Authenticated selects the limits for an authenticated client. The
	// caller sets it before each ReadCommands; while it is false the
	// reader returns one command at a time, so that an AUTH takes effect
	// for the commands pipelined behind it, as in Redis.
	Authenticated bool

	buf   []byte // buf[start:end] is received, not yet returned
	start int    // first byte of the command being parsed
	end   int
	scan  int // where parsing resumes, within buf[start:end]
	seek  int // where the search for the next '\n' resumes
	err   error
	peak  int // largest buffer allocated

	// Multibulk parsing state for the command at start.
	want    int   // arguments announced (0: header not read yet)
	bulkLen int   // length of the argument being read (-1: header not read)
	marks   []int // start and end offsets (from start) of arguments read

	// slab holds argument slices not handed out yet (see argSlots).
	slab [][]byte
}

// Sizing of the argument slabs (argSlots): one slot per slabArgBytes of
// the commands still buffered, up to slabMax slots.
const (
	slabArgBytes = 16 // a small argument with its "$N\r\n" header and CRLF
	slabMax      = 512
)

// argSlots returns room for a command's n arguments. The commands of one
// pipeline share a slab (one allocation rather than one per command: the
// largest number of a node's allocations per command left at
// redis-benchmark -P 16), sized from the bytes still buffered behind the
// command, so that a lone command gets exactly its own. Slots are handed
// out once and never written again, so a caller may keep a command's
// arguments as long as it likes (a transaction's queue), at the cost of
// keeping its slab.
func (rd *CommandReader) argSlots(n int) [][]byte {
	if cap(rd.slab)-len(rd.slab) < n {
		more := min((rd.end-rd.scan)/slabArgBytes, slabMax)
		rd.slab = make([][]byte, 0, n+more)
	}
	k := len(rd.slab)
	rd.slab = rd.slab[:k+n]
	return rd.slab[k : k+n : k+n]
}

// minBuffer is the smallest buffer the reader reads into: a slab of this
// size holds many small pipelined commands.
const minBuffer = 16 << 10

// NewCommandReader returns a reader of client commands from r.
func NewCommandReader(r io.Reader, limits CommandLimits) *CommandReader {
	if limits.MaxBulkLen <= 0 {
		limits.MaxBulkLen = DefaultMaxBulkLen
	}
	if limits.QueryBufferLimit <= 0 {
		limits.QueryBufferLimit = DefaultQueryBufferLimit
	}
	return &CommandReader{r: r, limits: limits, bulkLen: -1}
}

// ReadCommands blocks until at least one complete command has arrived and
// returns every complete command already received (a pipeline), each as its
// arguments, appended to dst. Empty commands (a blank inline line, `*0`)
// are skipped, as Redis skips them. Commands received before a protocol
// error are returned first; the error comes with the next call, and every
// call after it returns it again.
func (rd *CommandReader) ReadCommands(dst [][][]byte) ([][][]byte, error) {
	n := len(dst)
	for {
		var err error
		dst, err = rd.parse(dst, n)
		if err != nil {
			rd.err = err
		}
		if len(dst) > n {
			return dst, nil
		}
		if rd.err != nil {
			return dst, rd.err
		}
		if err := rd.fill(); err != nil {
			rd.err = err
			if errors.Is(err, io.EOF) && rd.end > rd.start {
				rd.err = io.ErrUnexpectedEOF
			}
			return dst, rd.err
		}
	}
}

// Buffered returns the number of received bytes not yet returned as
// commands.
func (rd *CommandReader) Buffered() int { return rd.end - rd.start }

// PeakBuffer returns the size of the largest buffer the reader has
// allocated: what reading this client's commands cost at most at once.
func (rd *CommandReader) PeakBuffer() int { return rd.peak }

// Size returns the size of the request buffer now allocated (Redis's
// qbuf plus qbuf-free in CLIENT LIST).
func (rd *CommandReader) Size() int { return len(rd.buf) }

// fill reads more input. Returned arguments point into the current buffer,
// so it is never written below end: when it has too little room left, the
// incomplete command is moved to a new buffer and the old one is left to
// the garbage collector once its arguments are no longer used.
func (rd *CommandReader) fill() error {
	pending := rd.end - rd.start
	if len(rd.buf)-rd.end < minBuffer/4 || rd.buf == nil {
		// Grow with what has been received, never with what was merely
		// announced: at most twice the pending bytes, and no more than
		// the argument being read still needs.
		size := 2 * pending
		if need := rd.needed(); need > 0 {
			size = min(size, need)
		}
		size = max(size, minBuffer)
		nb := make([]byte, size)
		rd.peak = max(rd.peak, size)
		copy(nb, rd.buf[rd.start:rd.end])
		rd.buf, rd.end = nb, pending
		rd.scan, rd.seek, rd.start = rd.scan-rd.start, max(rd.seek-rd.start, 0), 0
	}
	n, err := rd.r.Read(rd.buf[rd.end:])
	rd.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// needed returns how many bytes, from start, the command being read is
// known to need, so that a large argument is read into a buffer of its
// size rather than through repeated doubling.
func (rd *CommandReader) needed() int {
	if rd.want > 0 && rd.bulkLen >= 0 {
		return rd.scan - rd.start + rd.bulkLen + 2
	}
	return 0
}

// parse returns the complete commands in buf[start:end], resuming where it
// stopped, and the protocol error that ended it, if any.
func (rd *CommandReader) parse(dst [][][]byte, n int) ([][][]byte, error) {
	for rd.start < rd.end {
		if !rd.Authenticated && len(dst) > n {
			return dst, nil
		}
		var (
			args [][]byte
			done bool
			err  error
		)
		if rd.buf[rd.start] == '*' {
			args, done, err = rd.multibulk()
		} else {
			args, done, err = rd.inline()
		}
		if err != nil {
			return dst, err
		}
		if !done {
			return dst, rd.checkQueryBuffer()
		}
		if len(args) > 0 {
			dst = append(dst, args)
		}
	}
	return dst, nil
}

// checkQueryBuffer enforces the query buffer limit on what is pending.
func (rd *CommandReader) checkQueryBuffer() error {
	if int64(rd.end-rd.start)+int64(len(rd.marks))*12 > rd.limits.QueryBufferLimit {
		return &ProtocolError{Reason: "query buffer limit reached", qbuf: true}
	}
	return nil
}

// line finds the next line at or after from, and returns the index of its
// '\n', or -1 if it has not fully arrived. The search resumes where the
// last one for the same line stopped, so a line arriving a byte at a time
// is scanned once.
func (rd *CommandReader) line(from int) int {
	for i := max(from, rd.seek); i < rd.end; i++ {
		if rd.buf[i] == '\n' {
			return i
		}
	}
	rd.seek = rd.end
	return -1
}

// finish consumes the command that ends before next and resets the parsing
// state.
func (rd *CommandReader) finish(next int) {
	rd.start, rd.scan = next, next
	rd.want, rd.bulkLen, rd.marks = 0, -1, rd.marks[:0]
}

// multibulk continues reading the multibulk command at start.
func (rd *CommandReader) multibulk() (args [][]byte, done bool, err error) {
	if rd.want == 0 {
		nl := rd.line(rd.start)
		if nl < 0 {
			if rd.end-rd.start > MaxInlineLen {
				return nil, false, limitErr("too big mbulk count string")
			}
			return nil, false, nil
		}
		n, ok := parseHeaderLen(rd.buf[rd.start+1 : nl])
		if !ok || n > MaxMultibulkLen {
			return nil, false, syntaxErr("invalid multibulk length")
		}
		if n > UnauthMaxMultibulkLen && !rd.Authenticated {
			return nil, false, limitErr("unauthenticated multibulk length")
		}
		if n <= 0 {
			rd.finish(nl + 1)
			return nil, true, nil
		}
		rd.want, rd.scan = int(n), nl+1
	}
	for len(rd.marks)/2 < rd.want {
		if rd.bulkLen < 0 {
			nl := rd.line(rd.scan)
			if nl < 0 {
				if rd.end-rd.scan > MaxInlineLen {
					return nil, false, limitErr("too big bulk count string")
				}
				return nil, false, nil
			}
			if rd.buf[rd.scan] != '$' {
				return nil, false, syntaxErr(fmt.Sprintf("expected '$', got '%c'", rd.buf[rd.scan]))
			}
			n, ok := parseHeaderLen(rd.buf[rd.scan+1 : nl])
			if !ok || n < 0 || n > rd.limits.MaxBulkLen {
				return nil, false, syntaxErr("invalid bulk length")
			}
			if n > UnauthMaxBulkLen && !rd.Authenticated {
				return nil, false, limitErr("unauthenticated bulk length")
			}
			if int64(nl+1-rd.start)+n+2 > rd.limits.QueryBufferLimit {
				return nil, false, &ProtocolError{Reason: "query buffer limit reached", qbuf: true}
			}
			rd.bulkLen, rd.scan = int(n), nl+1
		}
		if rd.end-rd.scan < rd.bulkLen+2 {
			return nil, false, nil
		}
		e := rd.scan + rd.bulkLen
		if rd.buf[e] != '\r' || rd.buf[e+1] != '\n' {
			return nil, false, syntaxErr("invalid bulk length")
		}
		rd.marks = append(rd.marks, rd.scan-rd.start, e-rd.start)
		rd.scan, rd.bulkLen = e+2, -1
	}
	args = rd.argSlots(rd.want)
	base := rd.buf[rd.start:]
	for i := range args {
		args[i] = base[rd.marks[2*i]:rd.marks[2*i+1]:rd.marks[2*i+1]]
	}
	rd.finish(rd.scan)
	return args, true, nil
}

// parseHeaderLen parses a length header the way Redis's string2ll does: an
// optional '-' and decimal digits, no sign '+', no spaces, no leading
// zeros, within int64.
func parseHeaderLen(b []byte) (int64, bool) {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	} else {
		return 0, false // a header line must end in CRLF
	}
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 19 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 || (neg && n == 0) {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	return int64(n), true
}

// inline reads an inline command line at start.
func (rd *CommandReader) inline() (args [][]byte, done bool, err error) {
	nl := rd.line(rd.start)
	if nl < 0 {
		if rd.end-rd.start > MaxInlineLen {
			return nil, false, limitErr("too big inline request")
		}
		return nil, false, nil
	}
	if nl-rd.start > MaxInlineLen {
		return nil, false, limitErr("too big inline request")
	}
	line := rd.buf[rd.start:nl]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, ok := SplitArgs(line)
	if !ok {
		return nil, false, syntaxErr("unbalanced quotes in request")
	}
	if len(args) > UnauthMaxMultibulkLen && !rd.Authenticated {
		return nil, false, limitErr("unauthenticated multibulk length")
	}
	rd.finish(nl + 1)
	return args, true, nil
}

// SplitArgs splits an inline command line into arguments with the rules of
// Redis's sdssplitargs (the same as redis-cli's): arguments are separated by
// white space; "double quotes" take the escapes \n \r \t \b \a \\ \" and
// \xHH; 'single quotes' take \'; a closing quote must be followed by white
// space or the end of the line. It reports false for unbalanced quotes.
// Unquoted arguments point into line; quoted ones are new.
func SplitArgs(line []byte) (args [][]byte, ok bool) {
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return args, true
		}
		first := i
		var cur []byte
		copied := false // cur is a new slice rather than line[first:i]
		inq, insq := false, false
	token:
		for ; ; i++ {
			if i == len(line) {
				if inq || insq {
					return nil, false
				}
				break
			}
			c := line[i]
			switch {
			case inq:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					cur = append(cur, unhex(line[i+2])<<4|unhex(line[i+3]))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					switch line[i] {
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case 't':
						c = '\t'
					case 'b':
						c = '\b'
					case 'a':
						c = '\a'
					default:
						c = line[i]
					}
					cur = append(cur, c)
				case c == '"':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, false
					}
					i++
					break token
				default:
					cur = append(cur, c)
				}
			case insq:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					cur = append(cur, '\'')
				case c == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, false
					}
					i++
					break token
				default:
					cur = append(cur, c)
				}
			default:
				switch {
				case isSpace(c):
					break token
				case c == '"' || c == '\'':
					if !copied {
						cur = append([]byte(nil), line[first:i]...)
						copied = true
					}
					inq, insq = c == '"', c == '\''
				default:
					if copied {
						cur = append(cur, c)
					}
				}
			}
		}
		if !copied {
			cur = line[first:i:i]
		}
		args = append(args, cur)
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
