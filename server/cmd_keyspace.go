package server

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/throttledb/throttledb/fsm"
	keyglob "github.com/throttledb/throttledb/internal/glob"
)

// The keyspace commands over both kinds of key (THROTTLE.ACQUIRE's and
// CL.THROTTLE's). Those that change state (DEL, UNLINK, FLUSHALL,
// FLUSHDB) go through the log; those that read (EXISTS, TYPE, PTTL, TTL,
// SCAN, KEYS, RANDOMKEY) are answered, like DBSIZE, from the state of the
// node they reach at its cluster time, as a Redis replica answers reads: on
// a follower the answer may lag the leader's by the replication delay.

// errInvalidCursor is Redis's reply to a SCAN cursor that is not an
// unsigned 64-bit integer.
var errInvalidCursor = redisError("ERR invalid cursor")

// keyspaceReadable refuses reads while the node loads its state, as DBSIZE
// does.
func (s *Server) keyspaceReadable() error {
	if s.loading() {
		return redisError(msgLoading)
	}
	return nil
}

// proposeFlush parses FLUSHALL and FLUSHDB [ASYNC|SYNC]. Both modes do the
// same: the keys are dropped when the entry is applied, which costs O(1)
// on the applying goroutine (the old key set is left to the collector).
func proposeFlush(args [][]byte) (fsm.Command, error) {
	if len(args) > 2 {
		return nil, errSyntax
	}
	if len(args) == 2 {
		if m := string(args[1]); !strings.EqualFold(m, "async") && !strings.EqualFold(m, "sync") {
			return nil, errSyntax
		}
	}
	return fsm.FlushAll{}, nil
}

// cmdExists serves EXISTS key [key ...]: how many of the keys exist, a key
// named twice counting twice, as in Redis.
func cmdExists(s *Server, c *call) (any, error) {
	if len(c.args) < 2 {
		return nil, errArity("exists")
	}
	if err := s.keyspaceReadable(); err != nil {
		return nil, err
	}
	now := s.nowMs()
	var n int64
	for _, k := range c.args[1:] {
		if t, _ := s.fsm.Lookup(string(k), now); t != fsm.TypeNone {
			n++
		}
	}
	return n, nil
}

// cmdType serves TYPE key: throttle, cl.throttle or none.
func cmdType(s *Server, c *call) (any, error) {
	if len(c.args) != 2 {
		return nil, errArity("type")
	}
	if err := s.keyspaceReadable(); err != nil {
		return nil, err
	}
	t, _ := s.fsm.Lookup(string(c.args[1]), s.nowMs())
	return simpleString(t.String()), nil
}

// ttl serves PTTL (ms true) and TTL: the time until the key expires, -2
// when it does not exist. Never -1: every key expires, when its state is
// back to that of an absent key. TTL rounds to the nearest second, as
// Redis does.
func ttl(s *Server, c *call, ms bool) (any, error) {
	if len(c.args) != 2 {
		return nil, errArity(strings.ToLower(string(c.args[0])))
	}
	if err := s.keyspaceReadable(); err != nil {
		return nil, err
	}
	now := s.nowMs()
	t, expires := s.fsm.Lookup(string(c.args[1]), now)
	if t == fsm.TypeNone {
		return int64(-2), nil
	}
	left := expires - now
	if ms {
		return left, nil
	}
	return (left + 500) / 1000, nil
}

func cmdPTTL(s *Server, c *call) (any, error) { return ttl(s, c, true) }
func cmdTTL(s *Server, c *call) (any, error)  { return ttl(s, c, false) }

// keyFilter builds the MATCH and TYPE filter of SCAN and KEYS; nil when
// it keeps every key. typ is "" for any type.
func keyFilter(pattern, typ string) fsm.ScanFilter {
	if (pattern == "" || pattern == "*") && typ == "" {
		return nil
	}
	return func(key string, t fsm.KeyType) bool {
		if typ != "" && !strings.EqualFold(typ, t.String()) {
			return false
		}
		return pattern == "" || keyglob.Match(pattern, key)
	}
}

// cmdScan serves SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
// Each call visits about COUNT keys (10 by default) from the cursor, in
// the fsm's hash order (fsm.Scan), and returns those that match: a key
// present for the whole scan is returned exactly once, whatever happens
// meanwhile. An unknown TYPE matches no key, as in Redis 7.0.
func cmdScan(s *Server, c *call) (any, error) {
	if len(c.args) < 2 {
		return nil, errArity("scan")
	}
	cursor, err := strconv.ParseUint(string(c.args[1]), 10, 64)
	if err != nil {
		return nil, errInvalidCursor
	}
	count, pattern, typ := 10, "", ""
	for i := 2; i < len(c.args); i += 2 {
		if i+1 >= len(c.args) {
			return nil, errSyntax
		}
		v := c.args[i+1]
		switch strings.ToLower(string(c.args[i])) {
		case "match":
			pattern = string(v)
		case "count":
			n, ok := parseInt(v)
			if !ok {
				return nil, errNotInteger
			}
			if n < 1 {
				return nil, errSyntax
			}
			count = int(min(n, math.MaxInt32))
		case "type":
			typ = string(v)
		default:
			return nil, errSyntax
		}
	}
	if err := s.keyspaceReadable(); err != nil {
		return nil, err
	}
	next, keys := s.fsm.Scan(cursor, count, s.nowMs(), keyFilter(pattern, typ))
	if keys == nil {
		keys = []string{}
	}
	return []any{strconv.FormatUint(next, 10), keys}, nil
}

// cmdKeys serves KEYS pattern: every key that matches, in one reply. It
// costs O(n) in the number of keys and holds the state's read lock that
// long (Apply waits); SCAN is the way to walk a large keyspace.
func cmdKeys(s *Server, c *call) (any, error) {
	if len(c.args) != 2 {
		return nil, errArity("keys")
	}
	if err := s.keyspaceReadable(); err != nil {
		return nil, err
	}
	keys := s.fsm.AllKeys(s.nowMs(), keyFilter(string(c.args[1]), ""))
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}

// cmdRandomKey serves RANDOMKEY: a key chosen at random, or null when there
// is none.
func cmdRandomKey(s *Server, c *call) (any, error) {
	if err := s.keyspaceReadable(); err != nil {
		return nil, err
	}
	k, found := s.fsm.RandomKey(s.nowMs(), rand.IntN)
	if !found {
		return nil, nil
	}
	return k, nil
}

// createsKey returns the key a command would create if it does not exist,
// for maxmemory: an ACQUIRE's, or a CL.THROTTLE's that counts events (a
// peek, quantity 0, creates none).
func createsKey(c fsm.Command) (string, bool) {
	switch c := c.(type) {
	case fsm.Acquire:
		return c.Key, true
	case fsm.CellThrottle:
		return c.Key, c.Quantity > 0
	default:
		return "", false
	}
}
