package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/throttledb/throttledb/fsm"
	"github.com/tidwall/redcon"
)

func TestLookupCommand(t *testing.T) {
	for name, row := range commands {
		for _, spelled := range []string{name, strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:]} {
			if got := lookupCommand([]byte(spelled)); got != row {
				t.Errorf("lookupCommand(%q) = %v, want the row of %q", spelled, got, name)
			}
		}
	}
	for _, name := range []string{
		"",
		"nosuchcommand",
		"get\x00",
		"\u212Aeys",                    // KELVIN SIGN: strings.ToLower makes it "k", Redis's strcasecmp does not
		strings.Repeat("a", 33),        // longer than the lowering buffer
		"THROTTLE.ACQUIRE" + "X",       // a name's prefix is not the name
		strings.Repeat("ping", 100000), // long input must not be lowered at all
	} {
		if got := lookupCommand([]byte(name)); got != nil {
			t.Errorf("lookupCommand(%.40q) = row %q, want nil", name, got.name)
		}
	}
}

// TestWriteResult checks that a result is written exactly as resultReply's
// value would be, for each kind of reply.
func TestWriteResult(t *testing.T) {
	permit := fsm.Permit{Granted: true, WaitMs: 2, ValidAt: 3, ExpiresAt: 4, Pending: 5}
	tests := []struct {
		name string
		cmd  fsm.Command
		res  fsm.Result
		want string
	}{
		{"permit", fsm.Acquire{Key: "k"}, fsm.Result{Permit: permit}, "*5\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n"},
		{"denied", fsm.Acquire{Key: "k"}, fsm.Result{Permit: fsm.Permit{WaitMs: 7}}, "*5\r\n:0\r\n:7\r\n:0\r\n:0\r\n:0\r\n"},
		{"error", fsm.Acquire{Key: "k"}, fsm.Result{Err: fsm.ErrInvalidKey}, "-" + errorText(fsm.ErrInvalidKey) + "\r\n"},
		{"count", fsm.Reset{Keys: []string{"k"}}, fsm.Result{Count: 3}, ":3\r\n"},
		// What Apply answers to a new key past the table's cap, as it
		// wraps it and as it arrives decoded from the leader.
		{"key limit", fsm.Acquire{Key: "k"}, fsm.Result{Err: fmt.Errorf("%w: 134217727 keys held", fsm.ErrKeyLimit)}, "-ERR max number of keys reached\r\n"},
		{"key limit, CL.THROTTLE", fsm.CellThrottle{Key: "k"}, fsm.Result{Err: fsm.ErrKeyLimit}, "-ERR max number of keys reached\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			direct, boxed := newTestCall(), newTestCall()
			direct.writeResult(tt.cmd, tt.res)
			boxed.writeValue(resultReply(tt.cmd, tt.res))
			if got, want := direct.written(), boxed.written(); got != want {
				t.Fatalf("writeResult wrote %q, resultReply's value is %q", got, want)
			}
			if got := direct.written(); got != tt.want {
				t.Fatalf("wrote %q, want %q", got, tt.want)
			}
		})
	}
}

// testCall is a call whose replies go to a buffer.
type testCall struct {
	*call
	buf *bytes.Buffer
}

func newTestCall() testCall {
	buf := &bytes.Buffer{}
	conn := &clientConn{Writer: redcon.NewWriter(buf)}
	return testCall{&call{conn: conn, sess: &session{}}, buf}
}

// written flushes and returns what was written.
func (c testCall) written() string {
	c.conn.Flush()
	return c.buf.String()
}
