package server

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/throttledb/throttledb/fsm"
)

// A handler answers with a reply value and an error (see command.run);
// writeReply is the one place that turns them into RESP, in the session's
// protocol. Reply values:
//
//	nil             null (RESP3 `_`, RESP2 null bulk string)
//	simpleString    +text
//	string, []byte  bulk string
//	int64, int      integer
//	bool            integer 1 or 0, as Redis answers predicates
//	[]any           array of replies
//	mapReply        RESP3 map, or in RESP2 a flat array of 2n elements
//	setReply        RESP3 set, or in RESP2 an array
//	verbatim        RESP3 verbatim text (txt), or in RESP2 a bulk string
//	fsm.Permit      THROTTLE.ACQUIRE's five integers
//	error           an error element (inside an array, e.g. EXEC's)
//	rawReply        RESP already encoded (a relayed reply), written as is
//	hangUp          nothing: the handler closed the connection (SHUTDOWN)
//
// Handlers never write to the connection themselves, so a reply can be
// queued, forwarded or counted without knowing how it was produced.

// simpleString is a RESP simple string reply (+OK).
type simpleString string

// mapReply is a map reply: keys and values alternate.
type mapReply []any

// setReply is a set reply.
type setReply []any

// verbatim is text that RESP3 sends as a verbatim string (INFO's reply).
type verbatim string

// rawReply is RESP already encoded, written unchanged.
type rawReply []byte

// ok is Redis's +OK.
const ok = simpleString("OK")

// redisError is an error whose text is already the RESP error reply
// (Redis's wording, starting with its code), for errors that belong to the
// protocol rather than to a package: syntax, arity, authentication.
type redisError string

func (e redisError) Error() string { return string(e) }

// Protocol errors in Redis's words.
var (
	errSyntax     = redisError(msgSyntax)
	errNotInteger = redisError(msgNotInteger)
	errNoAuth     = redisError(msgNoAuth)
	errWrongPass  = redisError(msgWrongPass)
	errNoPassword = redisError(msgNoPassword)
	errDBIndex    = redisError(msgDBIndex)
	errNoProto    = redisError(msgNoProto)
	errLoading    = redisError(msgLoading)
	errExecOOM    = redisError(msgExecOOM)
)

// errArity is Redis's wrong-number-of-arguments error for name.
func errArity(name string) error { return redisError(wrongArity(name)) }

// errUnknownCommand is Redis's reply to a command it does not know.
func errUnknownCommand(args [][]byte) error { return redisError(unknownCommand(args)) }

// errUnknownSubcommand is Redis's reply to an unknown subcommand of cmd.
func errUnknownSubcommand(sub []byte, cmd string) error {
	return redisError(unknownSubcommand(sub, cmd))
}

// writeReply writes what a handler returned: the error's RESP text when err
// is not nil, else the reply.
func (c *call) writeReply(r any, err error) {
	if err != nil {
		c.conn.WriteError(errorText(err))
		return
	}
	c.writeValue(r)
}

// writeValue writes one reply value (see the list above).
func (c *call) writeValue(r any) {
	w := c.conn
	switch v := r.(type) {
	case nil:
		c.writeNull()
	case simpleString:
		w.WriteString(string(v))
	case string:
		w.WriteBulkString(v)
	case []byte:
		w.WriteBulk(v)
	case int64:
		w.WriteInt64(v)
	case int:
		w.WriteInt64(int64(v))
	case bool:
		if v {
			w.WriteInt64(1)
		} else {
			w.WriteInt64(0)
		}
	case []any:
		w.WriteArray(len(v))
		for _, e := range v {
			c.writeValue(e)
		}
	case []string:
		w.WriteArray(len(v))
		for _, e := range v {
			w.WriteBulkString(e)
		}
	case mapReply:
		if len(v)%2 != 0 {
			panic(fmt.Sprintf("server: map reply of %d elements", len(v)))
		}
		c.writeMapHeader(len(v) / 2)
		for _, e := range v {
			c.writeValue(e)
		}
	case setReply:
		if c.sess.resp3 {
			w.WriteRaw([]byte("~" + strconv.Itoa(len(v)) + "\r\n"))
		} else {
			w.WriteArray(len(v))
		}
		for _, e := range v {
			c.writeValue(e)
		}
	case verbatim:
		if c.sess.resp3 {
			w.WriteRaw([]byte("=" + strconv.Itoa(len(v)+4) + "\r\ntxt:" + string(v) + "\r\n"))
		} else {
			w.WriteBulkString(string(v))
		}
	case fsm.Permit:
		c.writePermit(v)
	case rawReply:
		w.noteRawReply(v)
		w.WriteRaw(v)
	case error:
		w.WriteError(errorText(v))
	case hangUp:
		// No reply: the connection closes after the replies before.
	default:
		// A handler returned a type this writer does not know: a bug, and
		// the client must still get an answer in order.
		w.WriteError(errorText(fmt.Errorf("%w: reply of type %T", errInternal, r)))
	}
}

// writePermit writes THROTTLE.ACQUIRE's five integers.
func (c *call) writePermit(p fsm.Permit) {
	granted := int64(0)
	if p.Granted {
		granted = 1
	}
	w := c.conn
	w.WriteArray(5)
	w.WriteInt64(granted)
	w.WriteInt64(p.WaitMs)
	w.WriteInt64(p.ValidAt)
	w.WriteInt64(p.ExpiresAt)
	w.WriteInt64(p.Pending)
}

// writeResult writes the reply resultReply(cmd, res) gives, without boxing
// a permit into a reply value (an allocation per command).
func (c *call) writeResult(cmd fsm.Command, res fsm.Result) {
	if res.Err == nil && permitReply(cmd) {
		c.writePermit(res.Permit)
		return
	}
	c.writeValue(resultReply(cmd, res))
}

// errInternal marks a server bug reported to the client rather than
// crashing the node.
var errInternal = errors.New("internal error")

// writeNull writes a null reply: `_` in RESP3, a null bulk string in RESP2.
func (c *call) writeNull() {
	if c.sess.resp3 {
		c.conn.WriteRaw([]byte("_\r\n"))
		return
	}
	c.conn.WriteNull()
}

// writeMapHeader starts a reply of n key-value pairs: a RESP3 map, or in
// RESP2 a flat array of 2n elements (Redis's own RESP2 form of a map).
func (c *call) writeMapHeader(n int) {
	if c.sess.resp3 {
		c.conn.WriteRaw([]byte("%" + strconv.Itoa(n) + "\r\n"))
		return
	}
	c.conn.WriteArray(2 * n)
}
