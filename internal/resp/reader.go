package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Limits applied by [ReadReply] so that hostile or corrupt input cannot
// exhaust memory or the stack. Exceeding any of them yields an error that
// wraps [ErrProtocol].
const (
	// MaxBulkLen is the largest accepted payload of a bulk string, blob
	// error or verbatim string (512 MiB, the same as Redis's default
	// proto-max-bulk-len).
	MaxBulkLen = 512 << 20

	// MaxAggregateLen is the largest accepted number of elements in one
	// array, set or push. Maps and attributes may hold at most
	// MaxAggregateLen/2 pairs. Memory is only ever allocated for data that
	// has actually been received, so this is a sanity bound.
	MaxAggregateLen = 1 << 24

	// MaxDepth is the deepest accepted nesting of aggregates: a reply made
	// of MaxDepth nested arrays is accepted, one more level is rejected.
	// An attribute counts as one level for both its own elements and the
	// reply it annotates.
	MaxDepth = 64

	// MaxLineLen is the longest accepted line (simple string, simple error,
	// number or length header), excluding its type byte and CRLF.
	MaxLineLen = 64 << 10
)

// ErrProtocol is returned (wrapped, test with errors.Is) when the peer sends
// bytes that are not a well-formed RESP reply or that exceed one of the
// limits ([MaxBulkLen], [MaxAggregateLen], [MaxDepth], [MaxLineLen]).
var ErrProtocol = errors.New("resp: protocol error")

// bulkChunk bounds how far ahead of the received data a bulk payload buffer
// is grown.
const bulkChunk = 64 << 10

// ReadReply reads exactly one complete RESP reply from r and returns its raw
// bytes, including the type byte and every CRLF, so that it can be written
// verbatim to another connection. The returned slice is freshly allocated
// and owned by the caller.
//
// Supported types are the RESP2 types + - : $ * (including the null bulk
// string $-1 and the null array *-1) and the RESP3 types _ , # ( = ! % ~ >
// and |. A map (%) or attribute (|) of n pairs holds 2n elements. An
// attribute is a prefix: ReadReply reads it and then the reply it annotates,
// and returns both as one raw reply. A push (>) is returned like any other
// reply. RESP3 streamed strings and aggregates ($? and *?) are not
// supported and are reported as protocol errors.
//
// If r is at EOF before the first byte, ReadReply returns io.EOF; if the
// input ends in the middle of a reply, it returns io.ErrUnexpectedEOF.
// Malformed input yields an error wrapping [ErrProtocol]. Other errors from
// r (for example timeouts) are returned unchanged. On any error the returned
// slice is nil and the reader's position is unspecified.
func ReadReply(r *bufio.Reader) ([]byte, error) {
	p := parser{r: r}
	if err := p.value(0); err != nil {
		if err == io.EOF && len(p.buf) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return p.buf, nil
}

// IsError reports whether raw is an error reply, that is a simple error
// ('-') or a RESP3 blob error ('!').
func IsError(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '-' || raw[0] == '!')
}

// ErrorText returns the message of an error reply without its type byte,
// length header or trailing CRLF, for example "ERR unknown command" for
// "-ERR unknown command\r\n". It returns "" if raw is not an error reply.
func ErrorText(raw []byte) string {
	if !IsError(raw) {
		return ""
	}
	body := raw[1:]
	if raw[0] == '-' {
		return string(bytes.TrimSuffix(body, []byte("\r\n")))
	}
	// Blob error: "!<len>\r\n<payload>\r\n".
	i := bytes.Index(body, []byte("\r\n"))
	if i < 0 {
		return string(body)
	}
	rest := body[i+2:]
	n, err := strconv.Atoi(string(body[:i]))
	if err != nil || n < 0 || n > len(rest) {
		return string(bytes.TrimSuffix(rest, []byte("\r\n")))
	}
	return string(rest[:n])
}

// parser accumulates the raw bytes of one reply in buf.
type parser struct {
	r   *bufio.Reader
	buf []byte
}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// value reads one reply (an element at the given aggregate depth).
func (p *parser) value(depth int) error {
	start := len(p.buf)
	if err := p.line(); err != nil {
		return err
	}
	typ := p.buf[start]
	// The header line without type byte and CRLF; only valid until p.buf
	// is appended to again.
	body := func() []byte { return p.buf[start+1 : len(p.buf)-2] }

	switch typ {
	case '+', '-':
		return nil
	case ':':
		if _, err := strconv.ParseInt(string(body()), 10, 64); err != nil {
			return protoErr("invalid integer %q", clip(body()))
		}
		return nil
	case '_':
		if len(body()) != 0 {
			return protoErr("invalid null %q", clip(body()))
		}
		return nil
	case ',':
		return checkDouble(body())
	case '#':
		if b := body(); len(b) != 1 || (b[0] != 't' && b[0] != 'f') {
			return protoErr("invalid boolean %q", clip(b))
		}
		return nil
	case '(':
		return checkBigNumber(body())
	case '$', '!', '=':
		n, err := parseLen(body(), typ == '$')
		if err != nil {
			return err
		}
		if n < 0 {
			return nil // null bulk string
		}
		if n > MaxBulkLen {
			return protoErr("bulk length %d exceeds %d", n, MaxBulkLen)
		}
		payload := len(p.buf)
		if err := p.bulk(int(n)); err != nil {
			return err
		}
		if typ == '=' && (n < 4 || p.buf[payload+3] != ':') {
			return protoErr("verbatim string without format prefix")
		}
		return nil
	case '*', '~', '>', '%', '|':
		n, err := parseLen(body(), typ == '*')
		if err != nil {
			return err
		}
		if n < 0 {
			return nil // null array
		}
		if typ == '%' || typ == '|' {
			if n > MaxAggregateLen/2 {
				return protoErr("aggregate of %d pairs exceeds %d", n, MaxAggregateLen/2)
			}
			n *= 2
		} else if n > MaxAggregateLen {
			return protoErr("aggregate of %d elements exceeds %d", n, MaxAggregateLen)
		}
		if depth >= MaxDepth {
			return protoErr("nesting deeper than %d", MaxDepth)
		}
		for ; n > 0; n-- {
			if err := p.value(depth + 1); err != nil {
				return err
			}
		}
		if typ == '|' {
			// The attribute annotates the reply that follows it.
			return p.value(depth + 1)
		}
		return nil
	default:
		return protoErr("unknown reply type %q", typ)
	}
}

// line appends one CRLF-terminated line to p.buf. The line is at least
// three bytes long on success (type byte plus CRLF).
func (p *parser) line() error {
	start := len(p.buf)
	for {
		frag, err := p.r.ReadSlice('\n')
		if len(p.buf)-start+len(frag) > MaxLineLen+3 {
			return protoErr("line longer than %d bytes", MaxLineLen)
		}
		p.buf = append(p.buf, frag...)
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return err
		}
	}
	l := p.buf[start:]
	if len(l) < 2 || l[len(l)-2] != '\r' {
		return protoErr("line not terminated by CRLF")
	}
	if len(l) < 3 {
		return protoErr("empty line")
	}
	return nil
}

// bulk appends an n-byte payload and its CRLF to p.buf, growing the buffer
// only as data arrives.
func (p *parser) bulk(n int) error {
	for remaining := n + 2; remaining > 0; {
		k := min(remaining, bulkChunk)
		p.buf = slices.Grow(p.buf, k)
		off := len(p.buf)
		p.buf = p.buf[:off+k]
		got, err := io.ReadFull(p.r, p.buf[off:])
		p.buf = p.buf[:off+got]
		if err != nil {
			return err
		}
		remaining -= k
	}
	if p.buf[len(p.buf)-2] != '\r' || p.buf[len(p.buf)-1] != '\n' {
		return protoErr("bulk payload not terminated by CRLF")
	}
	return nil
}

// parseLen parses a length or count header. Only plain decimal digits are
// accepted, plus "-1" when allowNull is set.
func parseLen(b []byte, allowNull bool) (int64, error) {
	if allowNull && string(b) == "-1" {
		return -1, nil
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, protoErr("invalid length %q", clip(b))
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, protoErr("invalid length %q", clip(b))
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func checkDouble(b []byte) error {
	s := string(b)
	switch s {
	case "inf", "-inf", "nan":
		return nil
	}
	_, err := strconv.ParseFloat(s, 64)
	var ne *strconv.NumError
	if err != nil && !(errors.As(err, &ne) && ne.Err == strconv.ErrRange) {
		return protoErr("invalid double %q", clip(b))
	}
	return nil
}

func checkBigNumber(b []byte) error {
	digits := b
	if len(digits) > 0 && (digits[0] == '-' || digits[0] == '+') {
		digits = digits[1:]
	}
	if len(digits) == 0 {
		return protoErr("invalid big number %q", clip(b))
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return protoErr("invalid big number %q", clip(b))
		}
	}
	return nil
}

// clip shortens b for inclusion in an error message.
func clip(b []byte) []byte {
	const maxShown = 32
	if len(b) > maxShown {
		return b[:maxShown]
	}
	return b
}
