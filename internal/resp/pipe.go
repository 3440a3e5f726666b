package resp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrNotSent is wrapped by the errors of [Pipe.Send] when none of the
// command reached the connection, so that the caller knows the peer cannot
// have run it.
var ErrNotSent = errors.New("resp: command not sent")

// pipeWriteTimeout bounds one write on a [Pipe]: a peer that stops reading
// breaks the pipe instead of blocking its senders for ever.
const pipeWriteTimeout = 10 * time.Second

// PipeReply is the reply to one command sent on a [Pipe]: its raw bytes, or
// the error that broke the pipe before the reply arrived (the peer may or
// may not have run the command).
type PipeReply struct {
	Raw []byte
	Err error
}

// Pipe is one connection on which commands are pipelined: [Pipe.Send] writes
// a command without waiting for the replies to earlier ones, and a reader
// hands each reply to its command in order. Once broken (a network error, a
// reply without a command, [Pipe.Close]) it stays broken: open another.
type Pipe struct {
	c       *conn
	addr    string
	wmu     sync.Mutex          // serialises writes and the order of waiting
	waiting chan chan PipeReply // commands sent, in order; cap bounds those in flight
	done    chan struct{}       // closed when broken
	once    sync.Once
	err     error // why it broke; set before done is closed
}

// OpenPipe dials and authenticates a new connection as the pool's are, for
// pipelining at most maxInFlight commands at once. The pipe is not part of
// the pool: close it with [Pipe.Close].
func (p *Pool) OpenPipe(ctx context.Context, maxInFlight int) (*Pipe, error) {
	c, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	// The dial's deadline must not apply to the pipe's life.
	c.nc.SetDeadline(time.Time{})
	pp := &Pipe{c: c, addr: p.cfg.Addr, waiting: make(chan chan PipeReply, max(1, maxInFlight)), done: make(chan struct{})}
	go pp.readLoop()
	return pp, nil
}

// Send writes one command and returns the channel its reply will arrive
// on. It blocks while maxInFlight commands await replies, until ctx ends.
// An error wrapping [ErrNotSent] means nothing was written; any other error
// means the command may have reached the peer.
func (pp *Pipe) Send(ctx context.Context, args ...[]byte) (<-chan PipeReply, error) {
	ch := make(chan PipeReply, 1)
	pp.wmu.Lock()
	defer pp.wmu.Unlock()
	select {
	case <-pp.done:
		return nil, fmt.Errorf("%w: %w", ErrNotSent, pp.err)
	default:
	}
	// Take the place in line before writing, so that the reader always
	// finds the command a reply belongs to.
	select {
	case pp.waiting <- ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrNotSent, ctx.Err())
	case <-pp.done:
		return nil, fmt.Errorf("%w: %w", ErrNotSent, pp.err)
	}
	pp.c.wbuf = AppendCommand(pp.c.wbuf[:0], args...)
	pp.c.nc.SetWriteDeadline(time.Now().Add(pipeWriteTimeout))
	n, err := pp.c.nc.Write(pp.c.wbuf)
	if cap(pp.c.wbuf) > maxKeptWriteBuf {
		pp.c.wbuf = nil
	}
	if err != nil {
		err = fmt.Errorf("resp: write %s: %w", pp.addr, err)
		go pp.fail(err) // fail takes wmu to answer the waiting commands
		if n == 0 {
			return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
		}
		return nil, err
	}
	return ch, nil
}

// Err returns why the pipe broke, or nil while it works.
func (pp *Pipe) Err() error {
	select {
	case <-pp.done:
		return pp.err
	default:
		return nil
	}
}

// Close breaks the pipe: commands waiting for replies get an error.
func (pp *Pipe) Close() { pp.fail(fmt.Errorf("resp: pipe to %s closed", pp.addr)) }

func (pp *Pipe) readLoop() {
	for {
		raw, err := ReadReply(pp.c.br)
		if err != nil {
			pp.fail(fmt.Errorf("resp: read %s: %w", pp.addr, err))
			return
		}
		select {
		case ch := <-pp.waiting:
			ch <- PipeReply{Raw: raw}
		default:
			pp.fail(fmt.Errorf("resp: %s: %w: a reply without a command", pp.addr, ErrProtocol))
			return
		}
	}
}

// fail breaks the pipe with err (the first error wins) and answers every
// command still waiting with it.
func (pp *Pipe) fail(err error) {
	pp.once.Do(func() {
		pp.err = err
		close(pp.done)
		pp.c.nc.Close()
	})
	// Under wmu no Send is between taking its place and writing, and none
	// takes a place after done is closed: every waiting command is here.
	pp.wmu.Lock()
	defer pp.wmu.Unlock()
	for {
		select {
		case ch := <-pp.waiting:
			ch <- PipeReply{Err: pp.err}
		default:
			return
		}
	}
}
