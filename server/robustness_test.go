package server_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestMalformedInputKeepsServerUp sends protocol garbage on raw connections
// and checks that each gets an error or is closed, that nothing is
// changed, and that the server keeps serving.
func TestMalformedInputKeepsServerUp(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	inputs := []string{
		"*2\r\n$3\r\nfoo\r\n$-5\r\n",          // negative bulk length
		"*1\r\n$99999999999999999999\r\n",     // absurd bulk length
		"*-7\r\n",                             // negative array
		"*3\r\n:1\r\n:2\r\n:3\r\n",            // integers instead of bulk strings
		"$5\r\nhello\r\n",                     // a bulk string, not a command
		"*2\r\n$16\r\nTHROTTLE.ACQUIRE\r\n$1", // truncated, then closed
		"\x00\x01\x02\xff\r\n",                // binary noise as an inline command
		"THROTTLE.ACQUIRE \"unterminated\r\n", // inline with an open quote
		"*1\r\n$4\r\nQUIT\r\n",                // a clean QUIT
	}
	for _, in := range inputs {
		c, err := net.Dial("tcp", n.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write([]byte(in))
		if cw, ok := c.(*net.TCPConn); ok {
			cw.CloseWrite()
		}
		// Read whatever comes back until the server closes or times out;
		// what matters is what the server does next.
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				break
			}
		}
		c.Close()
	}
	cl := n.Client()
	ctx := context.Background()
	if v, err := cl.Ping(ctx).Result(); err != nil || v != "PONG" {
		t.Fatalf("server down after garbage: %v %v", v, err)
	}
	if v, err := cl.DBSize(ctx).Result(); err != nil || v != 0 {
		t.Fatalf("garbage changed state: dbsize %v %v", v, err)
	}
	// Inline commands, as typed into telnet, work like Redis's.
	c, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("throttle.acquire k 1000 0\r\nQUIT\r\n"))
	r := bufio.NewReader(c)
	var lines []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
	}
	if len(lines) != 7 || lines[0] != "*5" || lines[1] != ":1" || lines[len(lines)-1] != "+OK" {
		t.Fatalf("inline session: %q", lines)
	}
}
