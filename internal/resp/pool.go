package resp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// ErrPoolClosed is returned by [Pool.Do] once the pool has been closed.
var ErrPoolClosed = errors.New("resp: pool closed")

// ErrAuth is returned when the peer rejects the password sent with AUTH on
// a new connection. The wrapping error carries the peer's error text.
var ErrAuth = errors.New("resp: authentication failed")

// errEmptyCommand is returned by [Pool.Do] when called without arguments:
// Redis-compatible servers send no reply at all to an empty array.
var errEmptyCommand = errors.New("resp: empty command")

const (
	defaultMaxIdle     = 8
	defaultDialTimeout = time.Second
	// maxKeptWriteBuf bounds the write buffer a connection keeps between
	// commands, so one huge command does not pin memory forever.
	maxKeptWriteBuf = 64 << 10
)

// aLongTimeAgo is a deadline in the past, used to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

// PoolConfig configures a [Pool].
type PoolConfig struct {
	Addr     string // host:port
	Username string // if non-empty (and Password too), AUTH sends it: AUTH <username> <password>
	Password string // if non-empty, each new connection sends AUTH <password> first and checks +OK
	// TLS, if non-nil, is called for each new connection, which then speaks
	// TLS with the config it returns (its ServerName, if empty, is Addr's
	// host). A function rather than a config, so that reloaded certificates
	// apply to the next connection.
	TLS         func() *tls.Config
	MaxIdle     int           // zero means 8; negative means no idle connections are kept
	DialTimeout time.Duration // zero means 1s; bounds dialing plus the AUTH handshake
}

// Pool is a small pool of connections to one RESP server. It is safe for
// concurrent use. Commands are synchronous: each [Pool.Do] takes a
// connection, sends one command, reads one reply and returns the
// connection to the pool.
type Pool struct {
	cfg PoolConfig

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	wbuf []byte
}

// NewPool returns a pool for cfg.Addr. No connection is made until the
// first [Pool.Do].
func NewPool(cfg PoolConfig) *Pool {
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = defaultMaxIdle
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	return &Pool{cfg: cfg}
}

// Addr returns the address the pool connects to.
func (p *Pool) Addr() string { return p.cfg.Addr }

// Do sends one command (encoded with [AppendCommand]) and returns the raw
// bytes of the reply, as read by [ReadReply].
//
// A RESP error reply is not a Go error: it is returned as raw bytes with a
// nil error so the caller can relay it (see [IsError] and [ErrorText]). Go
// errors are only returned for network and protocol failures (wrapping
// [ErrProtocol]), a failed AUTH on a new connection ([ErrAuth]), a closed
// pool ([ErrPoolClosed]) or a done ctx (the error then matches ctx.Err()
// with errors.Is). The deadline of ctx applies to dialing, writing and
// reading, and cancelling ctx interrupts a blocked Do.
//
// A connection that had any error is closed rather than returned to the
// pool. Do never retries: after a failure the command may or may not have
// been executed by the peer.
func (p *Pool) Do(ctx context.Context, args ...[]byte) ([]byte, error) {
	replies, err := p.DoPipeline(ctx, args)
	if err != nil {
		return nil, err
	}
	return replies[0], nil
}

// DoPipeline sends cmds (each as for [Pool.Do]) in one write on one
// connection and returns their raw replies, in order. On an error, replies
// holds the replies read before it (a prefix, possibly empty): the peer may
// or may not have run the commands after them.
func (p *Pool) DoPipeline(ctx context.Context, cmds ...[][]byte) ([][]byte, error) {
	if len(cmds) == 0 {
		return nil, errEmptyCommand
	}
	for _, args := range cmds {
		if len(args) == 0 {
			return nil, errEmptyCommand
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("resp: %s: %w", p.cfg.Addr, err)
	}
	c, err := p.get(ctx)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	replies, reusable, err := p.roundTrip(ctx, c, deadline, cmds)
	if err != nil {
		c.nc.Close()
		return replies, err
	}
	if reusable {
		p.put(c)
	} else {
		c.nc.Close()
	}
	return replies, nil
}

// Close closes all idle connections. Connections in use are closed when
// their [Pool.Do] finishes, and later calls to Do return [ErrPoolClosed].
// Close is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	var errs []error
	for _, c := range idle {
		errs = append(errs, c.nc.Close())
	}
	return errors.Join(errs...)
}

// get returns an idle connection or dials (and authenticates) a new one.
func (p *Pool) get(ctx context.Context) (*conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return p.dial(ctx)
}

// dial opens a new connection and authenticates it.
func (p *Pool) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	var nc net.Conn
	var err error
	if p.cfg.TLS != nil {
		// tls.Dialer bounds the TLS handshake by the dial timeout too.
		td := tls.Dialer{NetDialer: &d, Config: p.cfg.TLS()}
		nc, err = td.DialContext(ctx, "tcp", p.cfg.Addr)
	} else {
		nc, err = d.DialContext(ctx, "tcp", p.cfg.Addr)
	}
	if err != nil {
		return nil, p.wrap(ctx, "dial", err)
	}
	c := &conn{nc: nc, br: bufio.NewReader(nc)}
	if p.cfg.Password == "" {
		return c, nil
	}

	deadline := time.Now().Add(p.cfg.DialTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	auth := [][]byte{[]byte("AUTH"), []byte(p.cfg.Password)}
	if p.cfg.Username != "" {
		auth = [][]byte{[]byte("AUTH"), []byte(p.cfg.Username), []byte(p.cfg.Password)}
	}
	replies, ok, err := p.roundTrip(ctx, c, deadline, [][][]byte{auth})
	var reply []byte
	if err == nil {
		reply = replies[0]
	}
	switch {
	case err != nil:
	case ctx.Err() != nil:
		err = fmt.Errorf("resp: auth %s: %w", p.cfg.Addr, ctx.Err())
	case IsError(reply):
		err = fmt.Errorf("resp: %s: %w: %s", p.cfg.Addr, ErrAuth, ErrorText(reply))
	case string(reply) != "+OK\r\n":
		err = fmt.Errorf("resp: %s: %w: unexpected AUTH reply %q", p.cfg.Addr, ErrProtocol, clip(reply))
	case !ok:
		err = fmt.Errorf("resp: %s: %w: unexpected data after AUTH reply", p.cfg.Addr, ErrProtocol)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// put returns a healthy connection to the pool, or closes it if the pool is
// closed or full.
func (p *Pool) put(c *conn) {
	if cap(c.wbuf) > maxKeptWriteBuf {
		c.wbuf = nil
	}
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.cfg.MaxIdle {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	c.nc.Close()
}

// roundTrip writes cmds on c in one write and reads one reply for each.
// deadline (zero for none) is applied to the connection; cancelling ctx
// interrupts the I/O. On an error it returns the replies read so far.
// reusable is false when the connection must not go back to the pool even
// though every reply was read successfully.
func (p *Pool) roundTrip(ctx context.Context, c *conn, deadline time.Time, cmds [][][]byte) (replies [][]byte, reusable bool, err error) {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, false, p.wrap(ctx, "set deadline", err)
	}
	// Registered after SetDeadline so that it always wins.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(aLongTimeAgo) })

	c.wbuf = c.wbuf[:0]
	for _, args := range cmds {
		c.wbuf = AppendCommand(c.wbuf, args...)
	}
	if _, err := c.nc.Write(c.wbuf); err != nil {
		stop()
		return nil, false, p.wrap(ctx, "write", err)
	}
	replies = make([][]byte, 0, len(cmds))
	for range cmds {
		reply, err := ReadReply(c.br)
		if err != nil {
			stop()
			return replies, false, p.wrap(ctx, "read", err)
		}
		replies = append(replies, reply)
	}
	// If stop reports false the cancellation func has run or is running and
	// may still poison the deadline: never reuse the connection then.
	stopped := stop()
	// Leftover bytes mean the peer sent more replies than commands; the
	// stream can no longer be trusted.
	return replies, stopped && c.br.Buffered() == 0, nil
}

// wrap annotates a network error with the address and, when ctx is done or
// its deadline has passed, with the context error.
func (p *Pool) wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("resp: %s %s: %w: %w", op, p.cfg.Addr, cerr, err)
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return fmt.Errorf("resp: %s %s: %w: %w", op, p.cfg.Addr, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("resp: %s %s: %w", op, p.cfg.Addr, err)
}

// Pools holds one [Pool] per address, all sharing the same credentials,
// TLS and dial timeout. It is safe for concurrent use.
type Pools struct {
	base PoolConfig // Addr unset

	mu     sync.Mutex
	pools  map[string]*Pool
	closed bool
}

// NewPools returns an empty set of pools. Every pool it creates uses
// password for AUTH (if non-empty) and dialTimeout (zero means 1s).
func NewPools(password string, dialTimeout time.Duration) *Pools {
	return NewPoolsConfig(PoolConfig{Password: password, DialTimeout: dialTimeout})
}

// NewPoolsConfig returns an empty set of pools, each created with base
// (its Addr ignored) for its address.
func NewPoolsConfig(base PoolConfig) *Pools {
	base.Addr = ""
	return &Pools{base: base, pools: make(map[string]*Pool)}
}

// Get returns the pool for addr, creating it on first use. After
// [Pools.Close], Get returns a closed pool whose Do fails with
// [ErrPoolClosed].
func (ps *Pools) Get(addr string) *Pool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.pools[addr]; ok {
		return p
	}
	cfg := ps.base
	cfg.Addr = addr
	p := NewPool(cfg)
	if ps.closed {
		p.closed = true
		return p
	}
	ps.pools[addr] = p
	return p
}

// Close closes every pool created so far. It is idempotent.
func (ps *Pools) Close() {
	ps.mu.Lock()
	pools := ps.pools
	ps.pools = make(map[string]*Pool)
	ps.closed = true
	ps.mu.Unlock()
	for _, p := range pools {
		p.Close()
	}
}
