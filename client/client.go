package client

import (
	"context"
	"crypto/tls"
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
//     may have granted it; sending it again takes another slot, which wastes
//     capacity but never weakens spacing.
//   - CLUSTERDOWN (the node waited for a leader and found none) moves on to
//     the next address; when every address said so, the call fails with
//     ErrClusterDown.
//   - TRYAGAIN fails the call with ErrOutcomeUnknown at once. Wait, Do and
//     Throttle retry it (a retry takes a new slot: safe for spacing).
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
}

// WithSlop sets how long after its slot a permit may still be used (SLOP).
// It is truncated to whole milliseconds; 0 is allowed. The server's default
// is max(1 ms, interval/10).
func WithSlop(slop time.Duration) AcquireOption {
	return func(o *acquireOpts) { o.slop, o.hasSlop = slop, true }
}

// Acquire sends one THROTTLE.ACQUIRE: it takes a slot of key's throttle, now
// (Wait 0) or reserved in the future (Wait > 0), or is denied (Granted
// false, RetryAfter set). A denial is not an error. It does not sleep.
//
// interval must be at least 1 ms; it is rounded up to whole milliseconds
// (never looser than asked). max is how many future slots may be reserved
// (0: only "go now" grants). The error wraps ErrClusterDown,
// ErrOutcomeUnknown or ErrInvalidArgument, or is ctx's error.
func (c *Client) Acquire(ctx context.Context, key string, interval time.Duration, max int, opts ...AcquireOption) (Permit, error) {
	return c.permitCmd(ctx, "THROTTLE.ACQUIRE", key, interval, max, opts)
}

// Peek sends THROTTLE.PEEK: the answer Acquire would give now, changing
// nothing.
func (c *Client) Peek(ctx context.Context, key string, interval time.Duration, max int, opts ...AcquireOption) (Permit, error) {
	return c.permitCmd(ctx, "THROTTLE.PEEK", key, interval, max, opts)
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

func (c *Client) permitCmd(ctx context.Context, name, key string, interval time.Duration, max int, opts []AcquireOption) (Permit, error) {
	args, err := acquireArgs(name, key, interval, max, opts)
	if err != nil {
		return Permit{}, err
	}
	var p Permit
	err = c.do(ctx, args, func(cmd *redis.Cmd, sent, received time.Time) error {
		v, err := cmd.Int64Slice()
		if err != nil {
			return err
		}
		p, err = permitFromReply(v, sent, received)
		return err
	})
	notifyReply(opts, p, err)
	return p, err
}

func acquireArgs(name, key string, interval time.Duration, max int, opts []AcquireOption) ([]any, error) {
	var o acquireOpts
	for _, f := range opts {
		f(&o)
	}
	switch {
	case key == "":
		return nil, fmt.Errorf("%w: empty key", ErrInvalidArgument)
	case interval < time.Millisecond:
		return nil, fmt.Errorf("%w: interval %v: must be at least 1ms (the server counts whole milliseconds)", ErrInvalidArgument, interval)
	case max < 0:
		return nil, fmt.Errorf("%w: max %d is negative", ErrInvalidArgument, max)
	case o.hasSlop && o.slop < 0:
		return nil, fmt.Errorf("%w: slop %v is negative", ErrInvalidArgument, o.slop)
	}
	ms := int64((interval + time.Millisecond - 1) / time.Millisecond)
	args := []any{name, key, strconv.FormatInt(ms, 10), strconv.Itoa(max)}
	if o.hasSlop {
		args = append(args, "SLOP", strconv.FormatInt(o.slop.Milliseconds(), 10))
	}
	return args, nil
}

// do sends args, following the failover rules described on Client, and
// hands the successful reply, with the attempt's send and arrival times, to
// parse.
func (c *Client) do(ctx context.Context, args []any, parse func(cmd *redis.Cmd, sent, received time.Time) error) error {
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
