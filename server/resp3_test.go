package server_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/resp"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestRESP3 checks the exact bytes of the replies whose form depends on the
// protocol a session chose with HELLO (nulls and maps), and that every
// other reply, THROTTLE.ACQUIRE's included, is the same in both, so that a
// follower can relay the leader's reply byte for byte to either kind of
// client.
func TestRESP3(t *testing.T) {
	cl := testcluster.Start(t, 3, testcluster.Options{})
	leader := cl.WaitForLeader(10 * time.Second)
	follower := cl.Followers()[0]
	for _, n := range []*testcluster.Node{leader, follower} {
		nc, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		br := bufio.NewReader(nc)
		do := func(args ...string) string {
			t.Helper()
			if _, err := nc.Write(resp.AppendCommandStrings(nil, args...)); err != nil {
				t.Fatal(err)
			}
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			raw, err := resp.ReadReply(br)
			if err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			return string(raw)
		}
		key := "resp3-" + n.ID()
		// RESP2 first (the default).
		if got := do("CLIENT", "GETNAME"); got != "$-1\r\n" {
			t.Errorf("RESP2 CLIENT GETNAME: %q", got)
		}
		if got := do("CONFIG", "GET", "save"); got != "*2\r\n$4\r\nsave\r\n$0\r\n\r\n" {
			t.Errorf("RESP2 CONFIG GET: %q", got)
		}
		acq2 := do("THROTTLE.ACQUIRE", key, "60000", "5")

		hello := do("HELLO", "3")
		if hello[:4] != "%7\r\n" || !strings.Contains(hello, "$5\r\nproto\r\n:3\r\n") {
			t.Errorf("HELLO 3: %q, want a map of 7 with proto 3", hello)
		}
		if got := do("CLIENT", "GETNAME"); got != "_\r\n" {
			t.Errorf("RESP3 CLIENT GETNAME: %q, want _", got)
		}
		if got := do("CONFIG", "GET", "save"); got != "%1\r\n$4\r\nsave\r\n$0\r\n\r\n" {
			t.Errorf("RESP3 CONFIG GET save: %q, want a map of one", got)
		}
		if got := do("COMMAND", "DOCS", "nosuch"); got != "%0\r\n" {
			t.Errorf("RESP3 COMMAND DOCS nosuch: %q, want an empty map", got)
		}
		if got := do("COMMAND", "DOCS", "echo"); !strings.HasPrefix(got, "%1\r\n$4\r\necho\r\n%5\r\n$7\r\nsummary\r\n") ||
			!strings.Contains(got, "$9\r\narguments\r\n*1\r\n%3\r\n$4\r\nname\r\n$7\r\nmessage\r\n") {
			t.Errorf("RESP3 COMMAND DOCS echo: %q, want nested maps", got)
		}
		// The same command through the same node: a reservation one
		// interval after the RESP2 grant, in the same array of integers.
		acq3 := do("THROTTLE.ACQUIRE", key, "60000", "5")
		if acq2[:4] != "*5\r\n" || acq3[:4] != "*5\r\n" || acq3 == acq2 {
			t.Errorf("ACQUIRE replies: RESP2 %q, RESP3 %q", acq2, acq3)
		}
		if got := do("HELLO", "2"); got[:5] != "*14\r\n" {
			t.Errorf("HELLO 2: %q, want RESP2's flat array", got)
		}
		if got := do("CLIENT", "GETNAME"); got != "$-1\r\n" {
			t.Errorf("back to RESP2, CLIENT GETNAME: %q", got)
		}
	}
}
