package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"
)

// Target names what a run measures.
type Target string

const (
	// TargetThrottleDB sends THROTTLE.ACQUIRE to throttledb nodes.
	TargetThrottleDB Target = "throttledb"
	// TargetRedisLua sends EVALSHA of the script in throttle.lua, which
	// implements the same rule and reply, to a plain Redis.
	TargetRedisLua Target = "redis-lua"
)

// maxKeys bounds Config.Keys so that a typo cannot ask for billions of
// per-key slices in the spacing check.
const maxKeys = 1 << 24

var (
	// ErrInvalidConfig is returned when a Config field is out of range or
	// contradicts another; the message names the field.
	ErrInvalidConfig = errors.New("invalid bench config")
	// ErrUnreachable is returned when a target address cannot be reached
	// (or authenticated to, or given the Lua script) before the run starts.
	ErrUnreachable = errors.New("target unreachable")
	// ErrSpacing is returned, together with the full Result, when Verify
	// finds two grants of one key closer than the interval.
	ErrSpacing = errors.New("spacing check failed")
)

// Config configures a run. Zero values mean the documented defaults, except
// Max, for which zero is a meaningful value.
type Config struct {
	// Addrs lists RESP addresses. Clients are spread over them round-robin.
	// Empty with TargetThrottleDB: start an embedded single-node server on
	// 127.0.0.1 with its data in a temporary directory. TargetRedisLua needs
	// at least one address.
	Addrs []string
	// Password authenticates to Addrs.
	Password string
	// TLSConfig, when set, connects to Addrs with TLS.
	TLSConfig *tls.Config
	// Target is what to measure. Default TargetThrottleDB.
	Target Target
	// Clients is the number of concurrent clients, each with its own
	// connection, each sending its next round trip as soon as the previous
	// one is answered (a closed loop). Default 32.
	Clients int
	// Duration is how long clients keep sending. Default 10 s.
	Duration time.Duration
	// Keys is the number of keys; each command picks one uniformly at
	// random. Default 1000.
	Keys int
	// Interval is the throttle interval sent with every command; it must be
	// a whole number of milliseconds. Default 1 s.
	Interval time.Duration
	// Max is the max argument of every command: how many future slots a key
	// may hold. It has no default: 0 is valid (only "go now" grants). The
	// command line defaults to 10.
	Max int
	// Pipeline is the number of commands per round trip. Default 1.
	Pipeline int
	// Verify records every grant and checks at the end that, per key,
	// granted slots are at least Interval apart.
	Verify bool
	// KeyPrefix starts every key name; the keys are KeyPrefix + "0" ...
	// KeyPrefix + (Keys-1). Default "bench:<start, Unix ms>:", fresh for
	// every run so that an earlier run's reservations do not interfere.
	KeyPrefix string
	// Progress, if set, receives a line each second while the load runs:
	// seconds elapsed, and the throughput, p99 round-trip latency and
	// errors of that second. Nil: no progress lines.
	Progress io.Writer
	// ProgressInPlace rewrites the progress line in place (carriage
	// return, erase line): for a terminal. Otherwise each second adds a
	// line.
	ProgressInPlace bool

	// progressTicks replaces the one-second ticker (tests).
	progressTicks <-chan time.Time
}

func (c Config) withDefaults(start time.Time) Config {
	if c.Target == "" {
		c.Target = TargetThrottleDB
	}
	if c.Clients == 0 {
		c.Clients = 32
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Keys == 0 {
		c.Keys = 1000
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Pipeline == 0 {
		c.Pipeline = 1
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = fmt.Sprintf("bench:%d:", start.UnixMilli())
	}
	return c
}

func (c Config) validate() error {
	var msg string
	switch {
	case c.Target != TargetThrottleDB && c.Target != TargetRedisLua:
		msg = fmt.Sprintf("target must be %q or %q, not %q", TargetThrottleDB, TargetRedisLua, c.Target)
	case c.Target == TargetRedisLua && len(c.Addrs) == 0:
		msg = "target redis-lua needs the address of a Redis server (there is no embedded Redis)"
	case len(c.Addrs) == 0 && c.Password != "":
		msg = "a password needs addresses (the embedded server has none)"
	case c.Clients < 1:
		msg = fmt.Sprintf("clients must be at least 1, not %d", c.Clients)
	case c.Duration <= 0:
		msg = fmt.Sprintf("duration must be positive, not %v", c.Duration)
	case c.Keys < 1 || c.Keys > maxKeys:
		msg = fmt.Sprintf("keys must be 1 to %d, not %d", maxKeys, c.Keys)
	case c.Interval < time.Millisecond || c.Interval%time.Millisecond != 0:
		msg = fmt.Sprintf("interval must be a whole number of milliseconds, at least 1ms, not %v", c.Interval)
	case c.Max < 0:
		msg = fmt.Sprintf("max must not be negative, not %d", c.Max)
	case c.Pipeline < 1:
		msg = fmt.Sprintf("pipeline must be at least 1, not %d", c.Pipeline)
	}
	for _, a := range c.Addrs {
		if msg == "" && a == "" {
			msg = "an address is empty"
		}
	}
	if msg != "" {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, msg)
	}
	return nil
}
