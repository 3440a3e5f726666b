package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer echoes lines back on 127.0.0.1:0 until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func link(t *testing.T, target string) *Link {
	t.Helper()
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.SetTarget(target)
	return l
}

// roundTrip writes a line on c and reads it back, giving up after wait.
func roundTrip(c net.Conn, r *bufio.Reader, wait time.Duration) error {
	c.SetDeadline(time.Now().Add(wait))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err == nil && line != "ping\n" {
		return errors.New("echo garbled: " + line)
	}
	return err
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestLinkPassesCutsAndHeals(t *testing.T) {
	l := link(t, echoServer(t))
	old, oldR := dial(t, l.Addr())
	if err := roundTrip(old, oldR, 10*time.Second); err != nil {
		t.Fatalf("before the cut: %v", err)
	}

	l.Cut()
	if !l.IsCut() {
		t.Fatal("IsCut false after Cut")
	}
	// Nothing passes on an open connection or on a new one: the reads
	// time out (they must not get an echo, nor an error other than the
	// deadline).
	if err := roundTrip(old, oldR, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("open connection during the cut: %v, want a timeout", err)
	}
	during, duringR := dial(t, l.Addr())
	if err := roundTrip(during, duringR, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection during the cut: %v, want a timeout", err)
	}

	l.Heal()
	// Frozen connections are closed, never resumed: held bytes are dropped.
	for name, r := range map[string]*bufio.Reader{"open": oldR, "new": duringR} {
		c := old
		if name == "new" {
			c = during
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s connection after heal: read %q, %v; want it closed", name, b, err)
		}
	}
	after, afterR := dial(t, l.Addr())
	if err := roundTrip(after, afterR, 10*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}

func TestLinkWithoutTargetOrTargetDown(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:1"} {
		l := link(t, target)
		c, r := dial(t, l.Addr())
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("target %q: %v, want the connection closed", target, err)
		}
	}
}

func TestLinkRetarget(t *testing.T) {
	l := link(t, "")
	l.SetTarget(echoServer(t))
	c, r := dial(t, l.Addr())
	if err := roundTrip(c, r, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}
