package client

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a Client.
type Options struct {
	// Addrs lists RESP addresses ("host:port") of cluster nodes. Any node
	// serves every command, so one is enough; more give failover.
	// Required.
	Addrs []string
	// Username and Password authenticate (AUTH) when the nodes run with
	// -requirepass. Username may be empty ("default").
	Username string
	Password string
	// DialTimeout bounds connecting to one address before moving on to the
	// next. Default 1 s.
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for one reply. It must exceed the server's
	// leader wait (2 s by default) plus a commit, or a command that is
	// waiting for an election is abandoned early. Default 10 s. A context
	// deadline also bounds each call.
	ReadTimeout time.Duration
	// PoolSize is the number of connections kept per address. Default:
	// go-redis's default (10 per CPU).
	PoolSize int
	// TLSConfig, when set, makes every connection speak TLS with it: for
	// nodes started with --tls-cert-file. Its RootCAs must hold the
	// cluster's CA (--tls-ca-cert-file) and, unless the nodes run with
	// --tls-auth-clients no, its Certificates a client certificate the CA
	// signed. An empty ServerName means each address's host (the
	// certificates must name it).
	TLSConfig *tls.Config
}

// Client talks to a throttledb cluster. It keeps one go-redis client per
// address and sends each command to the address that last worked. It is
// safe for concurrent use.
//
// Retries are explicit and bounded; go-redis's own retries are disabled
// (MaxRetries -1, one dial attempt), because go-redis would otherwise resend
// a command on the same address after EOF, CLUSTERDOWN or TRYAGAIN. A call
// tries each address at most once (a single address twice), in order from
// the current one:
//
//   - a network error (refused, reset, EOF, timeout) moves on to the next
//     address and remembers it. If the command had been sent, the server
//     may have granted it; every THROTTLE.ACQUIRE and THROTTLE.CANCEL
//     carries an idempotency token (ID, random, one per call) that its
//     resends reuse, so the server answers a resend of a command it
//     already applied with the first reply instead of taking another slot.
//   - CLUSTERDOWN (the node waited for a leader and found none) moves on to
//     the next address; when every address said so, the call fails with
//     ErrClusterDown.
//   - TRYAGAIN fails the call with ErrOutcomeUnknown at once. Wait, Do and
//     Throttle retry it with the same token, so a grant that was made
//     after all is answered, not taken twice.
//   - any other error reply fails the call.
type Client struct {
	addrs []string
	rdbs  []*redis.Client
	cur   atomic.Int64 // index of the address that last worked

	// Hooks, replaced by tests.
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time
	jitter func(limit time.Duration) time.Duration
}

// New returns a Client for the cluster at o.Addrs. It does not connect: the
// first command does.
func New(o Options) (*Client, error) {
	if len(o.Addrs) == 0 {
		return nil, fmt.Errorf("%w: no addresses", ErrInvalidArgument)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 10 * time.Second
	}
	c := &Client{
		addrs:  append([]string(nil), o.Addrs...),
		sleep:  sleepCtx,
		now:    time.Now,
		jitter: randJitter,
	}
	for _, a := range c.addrs {
		c.rdbs = append(c.rdbs, redis.NewClient(&redis.Options{
			Addr:                  a,
			Username:              o.Username,
			Password:              o.Password,
			Protocol:              2, // throttledb speaks RESP2 only; skip HELLO 3
			DisableIdentity:       true,
			MaxRetries:            -1, // retries are ours: see Client
			DialerRetries:         1,  // one dial attempt, then the next address
			DialTimeout:           o.DialTimeout,
			ReadTimeout:           o.ReadTimeout,
			WriteTimeout:          o.ReadTimeout,
			ContextTimeoutEnabled: true,
			PoolSize:              o.PoolSize,
			TLSConfig:             o.TLSConfig,
		}))
	}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() error {
	var errs []error
	for _, r := range c.rdbs {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// Addrs returns the client's addresses.
func (c *Client) Addrs() []string { return append([]string(nil), c.addrs...) }

// Current returns the address commands are sent to first.
func (c *Client) Current() string { return c.addrs[c.cur.Load()] }

// AcquireOption modifies one THROTTLE.ACQUIRE or THROTTLE.PEEK.
type AcquireOption func(*acquireOpts)

type acquireOpts struct {
	slop    time.Duration
	hasSlop bool
	onReply []func(Permit, error)
	cost    int
	hasCost bool
	id      string
}

// WithSlop sets how long after its slot a permit may still be used (SLOP).
// It is truncated to whole milliseconds; 0 is allowed. The server's default
// is max(1 ms, interval/10).
func WithSlop(slop time.Duration) AcquireOption {
	return func(o *acquireOpts) { o.slop, o.hasSlop = slop, true }
}

// WithCost makes one call take n consecutive slots (COST n): the next
// caller's slot is n intervals later, and it is granted only if, after it,
// at most max slots are pending; n must be at most max+1. For a call that
// stands for n units of work against one rate (tokens of a model, rows of
// a batch). WithCost(0) makes Acquire a peek: it answers as Peek does and
// takes nothing. Peek takes it too: the answer Acquire would give for n.
func WithCost(n int) AcquireOption {
	return func(o *acquireOpts) { o.cost, o.hasCost = n, true }
}

// WithID sets the idempotency token of an Acquire (ID): 1 to 64 bytes,
// unique per request. Without it the client draws a random one per call
// (and reuses it on its own retries); give one when the request may be
// sent again by something the client does not see, such as a retry after
// this process restarts. A second ACQUIRE of the same key with the same
// token within a minute answers as the first grant did, taking nothing.
// Peek ignores it.
func WithID(token string) AcquireOption {
	return func(o *acquireOpts) { o.id = token }
}

// Acquire sends one THROTTLE.ACQUIRE: it takes a slot of key's throttle, now
// (Wait 0) or reserved in the future (Wait > 0), or is denied (Granted
// false, RetryAfter set). A denial is not an error. It does not sleep.
//
// interval must be at least 1 ms; it is rounded up to whole milliseconds
// (never looser than asked). max is how many future slots may be reserved
// (0: only "go now" grants). The error wraps ErrClusterDown,
// ErrOutcomeUnknown or ErrInvalidArgument, or is ctx's error.
//
// The command carries an idempotency token (see WithID); a resend of it
// to another address after a network error reuses it.
func (c *Client) Acquire(ctx context.Context, key string, interval time.Duration, max int, opts ...AcquireOption) (Permit, error) {
	r, err := newRequest("THROTTLE.ACQUIRE", key, interval, max, opts)
	if err != nil {
		return Permit{}, err
	}
	return c.send(ctx, r)
}

// Peek sends THROTTLE.PEEK: the answer Acquire would give now, changing
// nothing.
func (c *Client) Peek(ctx context.Context, key string, interval time.Duration, max int, opts ...AcquireOption) (Permit, error) {
	r, err := newRequest("THROTTLE.PEEK", key, interval, max, opts)
	if err != nil {
		return Permit{}, err
	}
	return c.send(ctx, r)
}

// Cancel sends THROTTLE.CANCEL: it gives back p, a permit of key's
// throttle, if it is still the key's newest grant, so that the next caller
// gets its slot (all of its slots, for a permit of WithCost(n)). It
// reports whether it did; false when p was granted before another grant
// of the key, has expired, or was given back already. Give back only a
// permit that will not be used. The command carries a token, so a resend
// does not give back a slot granted to someone else meanwhile.
func (c *Client) Cancel(ctx context.Context, key string, p Permit) (bool, error) {
	if key == "" || !p.Granted {
		return false, fmt.Errorf("%w: a key and a granted permit are required", ErrInvalidArgument)
	}
	args := []any{"THROTTLE.CANCEL", key, strconv.FormatInt(p.ValidAt.UnixMilli(), 10), "ID", newToken()}
	var n int64
	err := c.do(ctx, args, func(cmd *redis.Cmd, _, _ time.Time) (err error) {
		n, err = cmd.Int64()
		return err
	})
	return n == 1, err
}

// request is one THROTTLE.ACQUIRE or THROTTLE.PEEK, kept across its
// retries: its arguments (with its token) and when it was first sent.
type request struct {
	args  []any
	opts  []AcquireOption // for OnReply
	peek  bool            // a PEEK, or an ACQUIRE with cost 0
	first time.Time       // zero until sent; see send
}

func newRequest(name, key string, interval time.Duration, max int, opts []AcquireOption) (*request, error) {
	args, o, err := acquireArgs(name, key, interval, max, opts)
	if err != nil {
		return nil, err
	}
	return &request{args: args, opts: opts, peek: name == "THROTTLE.PEEK" || o.hasCost && o.cost == 0}, nil
}

// send sends r and parses the permit. A reply to a retry with the same
// token may be the reply to an earlier attempt, decided as early as r's
// first send: the permit's deadline is moved earlier by the time since
// then (Permit.Deadline), so that it is never later than the slot's.
func (c *Client) send(ctx context.Context, r *request) (Permit, error) {
	var p Permit
	err := c.doFrom(ctx, r.args, &r.first, func(cmd *redis.Cmd, sent, received time.Time) error {
		v, err := cmd.Int64Slice()
		if err != nil {
			return err
		}
		p, err = permitFromReply(v, sent, received)
		p.early = max(0, sent.Sub(r.first))
		return err
	})
	notifyReply(r.opts, p, err)
	return p, err
}

// newToken returns a random idempotency token: 16 bytes from crypto/rand
// in 22 characters of base64url.
func newToken() string {
	var b [16]byte
	crand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Reset sends THROTTLE.RESET: it forgets the keys' state and returns how
// many existed.
func (c *Client) Reset(ctx context.Context, keys ...string) (int, error) {
	if len(keys) == 0 {
		return 0, fmt.Errorf("%w: no keys", ErrInvalidArgument)
	}
	args := []any{"THROTTLE.RESET"}
	for _, k := range keys {
		if k == "" {
			return 0, fmt.Errorf("%w: empty key", ErrInvalidArgument)
		}
		args = append(args, k)
	}
	var n int64
	err := c.do(ctx, args, func(cmd *redis.Cmd, _, _ time.Time) (err error) {
		n, err = cmd.Int64()
		return err
	})
	return int(n), err
}

func acquireArgs(name, key string, interval time.Duration, max int, opts []AcquireOption) ([]any, acquireOpts, error) {
	var o acquireOpts
	for _, f := range opts {
		f(&o)
	}
	switch {
	case key == "":
		return nil, o, fmt.Errorf("%w: empty key", ErrInvalidArgument)
	case interval < time.Millisecond:
		return nil, o, fmt.Errorf("%w: interval %v: must be at least 1ms (the server counts whole milliseconds)", ErrInvalidArgument, interval)
	case max < 0:
		return nil, o, fmt.Errorf("%w: max %d is negative", ErrInvalidArgument, max)
	case o.hasSlop && o.slop < 0:
		return nil, o, fmt.Errorf("%w: slop %v is negative", ErrInvalidArgument, o.slop)
	case o.hasCost && (o.cost < 0 || o.cost > max+1):
		return nil, o, fmt.Errorf("%w: cost %d is outside 0..max+1 (%d)", ErrInvalidArgument, o.cost, max+1)
	case len(o.id) > 64:
		return nil, o, fmt.Errorf("%w: ID of %d bytes (at most 64)", ErrInvalidArgument, len(o.id))
	}
	ms := int64((interval + time.Millisecond - 1) / time.Millisecond)
	args := []any{name, key, strconv.FormatInt(ms, 10), strconv.Itoa(max)}
	if o.hasSlop {
		args = append(args, "SLOP", strconv.FormatInt(o.slop.Milliseconds(), 10))
	}
	if o.hasCost {
		args = append(args, "COST", strconv.Itoa(o.cost))
	}
	if name == "THROTTLE.ACQUIRE" && !(o.hasCost && o.cost == 0) {
		id := o.id
		if id == "" {
			id = newToken()
		}
		args = append(args, "ID", id)
	}
	return args, o, nil
}

// do sends args, following the failover rules described on Client, and
// hands the successful reply, with the attempt's send and arrival times, to
// parse.
func (c *Client) do(ctx context.Context, args []any, parse func(cmd *redis.Cmd, sent, received time.Time) error) error {
	return c.doFrom(ctx, args, nil, parse)
}

// doFrom is do that also records, in *first if it is zero, when the first
// attempt was sent.
func (c *Client) doFrom(ctx context.Context, args []any, first *time.Time, parse func(cmd *redis.Cmd, sent, received time.Time) error) error {
	n := len(c.rdbs)
	attempts := max(n, 2)
	start := int(c.cur.Load())
	var lastErr error
	for k := 0; k < attempts; k++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		i := (start + k) % n
		sent := c.now()
		if first != nil && first.IsZero() {
			*first = sent
		}
		cmd := redis.NewCmd(ctx, args...)
		_ = c.rdbs[i].Process(ctx, cmd)
		received := c.now()
		err := cmd.Err()
		if err == nil {
			if err := parse(cmd, sent, received); err != nil {
				return fmt.Errorf("throttledb: %s: %w", c.addrs[i], err)
			}
			c.cur.Store(int64(i))
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		var rerr redis.Error
		if !errors.As(err, &rerr) {
			// Network error: move on, and make the next address current
			// (unless another goroutine already moved on).
			lastErr = fmt.Errorf("%s: %w", c.addrs[i], err)
			c.cur.CompareAndSwap(int64(i), int64((i+1)%n))
			continue
		}
		switch {
		case redis.IsClusterDownError(err):
			lastErr = fmt.Errorf("%w: %s: %w", ErrClusterDown, c.addrs[i], err)
			continue
		case redis.IsTryAgainError(err):
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		default:
			return fmt.Errorf("throttledb: %s: %w", c.addrs[i], err)
		}
	}
	if errors.Is(lastErr, ErrClusterDown) {
		return lastErr
	}
	return fmt.Errorf("%w: no address reachable: %w", ErrClusterDown, lastErr)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func randJitter(limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}
