package resp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer answers ECHO commands in order; hang makes it read without
// replying, and closeAfter (if > 0) closes each connection after that many
// commands.
func echoServer(t *testing.T, hang bool, closeAfter int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				rd := NewCommandReader(nc, CommandLimits{})
				rd.Authenticated = true
				w := bufio.NewWriter(nc)
				served := 0
				for {
					cmds, err := rd.ReadCommands(nil)
					if err != nil {
						return
					}
					for _, c := range cmds {
						served++
						if closeAfter > 0 && served > closeAfter {
							return
						}
						if !hang {
							fmt.Fprintf(w, "$%d\r\n%s\r\n", len(c[1]), c[1])
						}
					}
					w.Flush()
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestPipeMatchesRepliesInOrder(t *testing.T) {
	p := NewPool(PoolConfig{Addr: echoServer(t, false, 0)})
	pp, err := p.OpenPipe(context.Background(), 8)
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				want := fmt.Sprintf("g%d-%d", g, i)
				ch, err := pp.Send(context.Background(), []byte("ECHO"), []byte(want))
				if err != nil {
					t.Error(err)
					return
				}
				r := <-ch
				if r.Err != nil || string(r.Raw) != fmt.Sprintf("$%d\r\n%s\r\n", len(want), want) {
					t.Errorf("reply %q, %v for %s", r.Raw, r.Err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestPipeBroken(t *testing.T) {
	p := NewPool(PoolConfig{Addr: echoServer(t, true, 3)})
	pp, err := p.OpenPipe(context.Background(), 8)
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan PipeReply
	for i := 0; i < 4; i++ {
		ch, err := pp.Send(context.Background(), []byte("ECHO"), []byte("x"))
		if err != nil {
			// The server may already have closed: then nothing was sent.
			if !errors.Is(err, ErrNotSent) && i < 3 {
				t.Fatalf("send %d: %v", i, err)
			}
			break
		}
		chans = append(chans, ch)
	}
	for i, ch := range chans {
		select {
		case r := <-ch:
			if r.Err == nil {
				t.Fatalf("command %d got a reply from a server that gave none: %q", i, r.Raw)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("command %d never answered after the connection closed", i)
		}
	}
	if pp.Err() == nil {
		t.Fatal("pipe not broken")
	}
	if _, err := pp.Send(context.Background(), []byte("ECHO"), []byte("x")); !errors.Is(err, ErrNotSent) {
		t.Fatalf("send on a broken pipe: %v", err)
	}
}

func TestPipeBoundsInFlight(t *testing.T) {
	p := NewPool(PoolConfig{Addr: echoServer(t, true, 0)})
	pp, err := p.OpenPipe(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer pp.Close()
	for i := 0; i < 2; i++ {
		if _, err := pp.Send(context.Background(), []byte("ECHO"), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := pp.Send(ctx, []byte("ECHO"), []byte("x")); !errors.Is(err, ErrNotSent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third send with two in flight: %v", err)
	}
}
