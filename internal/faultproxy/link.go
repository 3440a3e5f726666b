package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned by Link methods after Close.
var ErrClosed = errors.New("faultproxy: link closed")

// dialTimeout bounds the proxy's own dial to the target.
const dialTimeout = time.Second

// Link proxies TCP connections from its listen address to a target address
// that can be changed, and can be cut and healed (see the package comment).
type Link struct {
	ln net.Listener

	mu     sync.Mutex
	target string // "" until SetTarget: connections are closed at once
	cut    bool
	conns  map[*conn]struct{}
	closed bool

	wg sync.WaitGroup
}

// conn is one proxied connection: the accepted client side and, unless it
// was accepted while the link was cut, the upstream side.
type conn struct {
	client, upstream net.Conn
	frozen           chan struct{} // closed when the connection freezes
	freezeOnce       sync.Once
	closeOnce        sync.Once
}

func (c *conn) freeze() { c.freezeOnce.Do(func() { close(c.frozen) }) }

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.client.Close()
		if c.upstream != nil {
			c.upstream.Close()
		}
	})
}

// Listen starts a link listening on addr (use "127.0.0.1:0").
func Listen(addr string) (*Link, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	l := &Link{ln: ln, conns: map[*conn]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr returns the address the link listens on: the address the source node
// is told to dial to reach the target.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// SetTarget sets the address connections are proxied to (a node that was
// restarted on new ports). Existing connections are not affected.
func (l *Link) SetTarget(addr string) {
	l.mu.Lock()
	l.target = addr
	l.mu.Unlock()
}

// Cut freezes every open connection and makes new ones freeze on arrival.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = true
	for c := range l.conns {
		c.freeze()
	}
}

// Heal closes every frozen connection and lets new connections pass.
func (l *Link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cut = false
	for c := range l.conns {
		select {
		case <-c.frozen:
			c.close()
			delete(l.conns, c)
		default:
		}
	}
}

// IsCut reports whether the link is cut.
func (l *Link) IsCut() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut
}

// Close stops the listener, closes every connection and waits for the
// proxy's goroutines to end.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	for c := range l.conns {
		c.close()
	}
	l.mu.Unlock()
	err := l.ln.Close()
	l.wg.Wait()
	return err
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.wg.Add(1)
		go l.serve(nc)
	}
}

// serve proxies one accepted connection until either side closes it or the
// link freezes and heals it away.
func (l *Link) serve(client net.Conn) {
	defer l.wg.Done()
	c := &conn{client: client, frozen: make(chan struct{})}
	l.mu.Lock()
	if l.closed || l.target == "" {
		l.mu.Unlock()
		client.Close()
		return
	}
	target, cut := l.target, l.cut
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	defer func() {
		c.close()
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
	}()
	if cut {
		// Accepted during a cut: hold it, pass nothing, until healed.
		c.freeze()
		l.holdUntilClosed(c)
		return
	}
	up, err := net.DialTimeout("tcp", target, dialTimeout)
	if err != nil {
		return // the target is down: the source sees its connection close
	}
	l.mu.Lock()
	c.upstream = up
	// The link may have been cut (or closed) while dialling.
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { pump(c, up, client); done <- struct{}{} }()
	go func() { pump(c, client, up); done <- struct{}{} }()
	<-done
	// One direction ended (EOF, error, or frozen and then closed by Heal
	// or Close): end the other.
	select {
	case <-c.frozen:
		l.holdUntilClosed(c)
	default:
	}
	c.close()
	<-done
}

// holdUntilClosed waits until Heal or Close closes the frozen c: reading
// from the client then fails.
func (l *Link) holdUntilClosed(c *conn) {
	io.Copy(io.Discard, c.client) // returns when the client side is closed
}

// pump copies src to dst until an error, or until c freezes: bytes read
// after the freeze are dropped, and pump then waits for the connection to be
// closed.
func pump(c *conn, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-c.frozen:
				return
			default:
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
