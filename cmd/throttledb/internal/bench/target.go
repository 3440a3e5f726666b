package bench

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// luaScript is THROTTLE.ACQUIRE for a plain Redis (TargetRedisLua).
//
//go:embed throttle.lua
var luaScript string

// LuaScript returns the Lua script that TargetRedisLua loads into Redis:
// throttledb's THROTTLE.ACQUIRE rule and reply, called as
// EVALSHA sha 1 key interval max [SLOP ms].
func LuaScript() string { return luaScript }

// doer is what a command is queued on: a client (one round trip per
// command) or a pipeline.
type doer interface {
	Do(ctx context.Context, args ...any) *redis.Cmd
}

// acquirer builds the target's THROTTLE.ACQUIRE command for a key, with the
// interval and max of the run.
type acquirer struct {
	sha           string // redis-lua: the script's SHA1; empty for throttledb
	interval, max string
}

func newAcquirer(cfg Config, sha string) acquirer {
	return acquirer{
		sha:      sha,
		interval: strconv.FormatInt(cfg.Interval.Milliseconds(), 10),
		max:      strconv.Itoa(cfg.Max),
	}
}

func (a acquirer) queue(ctx context.Context, d doer, key string) *redis.Cmd {
	if a.sha != "" {
		return d.Do(ctx, "EVALSHA", a.sha, 1, key, a.interval, a.max)
	}
	return d.Do(ctx, "THROTTLE.ACQUIRE", key, a.interval, a.max)
}

// dial opens one client per Config.Clients, spread over addrs, each on a
// single connection with go-redis's retries off (a retried THROTTLE.ACQUIRE
// could be granted twice, and would hide errors). It checks every
// connection with PING before the run starts.
func dial(ctx context.Context, cfg Config, addrs []string) ([]*redis.Client, error) {
	clients := make([]*redis.Client, 0, cfg.Clients)
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for i := range cfg.Clients {
		c := redis.NewClient(&redis.Options{
			Addr:            addrs[i%len(addrs)],
			Password:        cfg.Password,
			TLSConfig:       cfg.TLSConfig,
			Protocol:        2, // throttledb speaks RESP2; so Redis is read the same way
			DisableIdentity: true,
			PoolSize:        1,
			MaxRetries:      -1,
			DialerRetries:   1, // an address that refuses fails at once
		})
		clients = append(clients, c)
		if err := c.Ping(ctx).Err(); err != nil {
			closeAll()
			return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, addrs[i%len(addrs)], err)
		}
	}
	return clients, nil
}

// loadScript loads the Lua script into every address (through the first
// client of each) and returns its SHA1.
func loadScript(ctx context.Context, clients []*redis.Client, addrs []string) (string, error) {
	var sha string
	for i := range min(len(addrs), len(clients)) {
		got, err := clients[i].ScriptLoad(ctx, luaScript).Result()
		if err != nil {
			return "", fmt.Errorf("%w: SCRIPT LOAD on %s: %v", ErrUnreachable, addrs[i], err)
		}
		sha = got
	}
	return sha, nil
}
