package server

import (
	"net"
	"sync"
)

// gateListener lets a graceful shutdown stop accepting connections while the
// ones already open finish their in-flight commands. redcon closes every
// connection as soon as Accept fails, so after stopAccepting Accept blocks
// until Close instead of failing.
type gateListener struct {
	net.Listener
	stopOnce  sync.Once
	closeOnce sync.Once
	stopped   chan struct{}
	closed    chan struct{}
}

func newGateListener(ln net.Listener) *gateListener {
	return &gateListener{Listener: ln, stopped: make(chan struct{}), closed: make(chan struct{})}
}

func (g *gateListener) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err != nil {
		select {
		case <-g.stopped:
			<-g.closed
			return nil, net.ErrClosed
		default:
		}
	}
	return c, err
}

// stopAccepting closes the socket so no new connection is accepted.
func (g *gateListener) stopAccepting() {
	g.stopOnce.Do(func() {
		close(g.stopped)
		g.Listener.Close()
	})
}

// Close stops accepting and releases Accept, so the RESP server closes
// every connection.
func (g *gateListener) Close() error {
	g.stopAccepting()
	g.closeOnce.Do(func() { close(g.closed) })
	return nil
}
