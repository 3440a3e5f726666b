package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// do runs one command and returns its reply or error text.
func do(t *testing.T, c *redis.Client, args ...any) (any, string) {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil {
		var rerr redis.Error
		if errors.As(err, &rerr) {
			return nil, err.Error()
		}
		t.Fatalf("%v: transport error %v", args, err)
	}
	return v, ""
}

func TestCommandErrors(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	long := strings.Repeat("k", 64<<10+1)
	tests := []struct {
		name string
		args []any
		want string
	}{
		{"acquire-arity-low", []any{"THROTTLE.ACQUIRE", "k", 1}, "ERR wrong number of arguments for 'throttle.acquire' command"},
		{"acquire-option-without-value", []any{"throttle.acquire", "k", 1, 1, "SLOP"}, "ERR syntax error"},
		{"acquire-extra-word", []any{"throttle.acquire", "k", 1, 1, "SLOP", 1, 2}, "ERR syntax error"},
		{"acquire-interval-not-int", []any{"throttle.acquire", "k", "1.5", 1}, "ERR value is not an integer or out of range"},
		{"acquire-max-not-int", []any{"throttle.acquire", "k", 1, "x"}, "ERR value is not an integer or out of range"},
		{"acquire-int-overflow", []any{"throttle.acquire", "k", "9223372036854775808", 1}, "ERR value is not an integer or out of range"},
		{"acquire-slop-not-int", []any{"throttle.acquire", "k", 1, 1, "slop", "x"}, "ERR value is not an integer or out of range"},
		{"acquire-bad-option", []any{"throttle.acquire", "k", 1, 1, "SLIP", 1}, "ERR syntax error"},
		{"acquire-interval-zero", []any{"throttle.acquire", "k", 0, 1}, "ERR interval must be a positive integer (milliseconds)"},
		{"acquire-max-negative", []any{"throttle.acquire", "k", 1, -1}, "ERR max must be zero or a positive integer"},
		{"acquire-slop-negative", []any{"throttle.acquire", "k", 1, 1, "SLOP", -1}, "ERR SLOP must be zero or a positive integer (milliseconds)"},
		{"acquire-overflow", []any{"throttle.acquire", "k", "9223372036854775000", 1}, "ERR interval, max, SLOP or COST too large: the slot time would overflow int64 milliseconds"},
		{"acquire-slop-overflow", []any{"throttle.acquire", "k", 1, 1, "SLOP", "9223372036854775000"}, "ERR interval, max, SLOP or COST too large: the slot time would overflow int64 milliseconds"},
		{"acquire-empty-key", []any{"throttle.acquire", "", 1, 1}, "ERR invalid key: keys must be 1 to 65536 bytes"},
		{"acquire-long-key", []any{"throttle.acquire", long, 1, 1}, "ERR invalid key: keys must be 1 to 65536 bytes"},
		{"peek-arity", []any{"THROTTLE.PEEK", "k"}, "ERR wrong number of arguments for 'throttle.peek' command"},
		{"peek-interval", []any{"THROTTLE.PEEK", "k", -5, 1}, "ERR interval must be a positive integer (milliseconds)"},
		{"reset-arity", []any{"THROTTLE.RESET"}, "ERR wrong number of arguments for 'throttle.reset' command"},
		{"reset-empty-key", []any{"THROTTLE.RESET", "a", ""}, "ERR invalid key: keys must be 1 to 65536 bytes"},
		{"unknown", []any{"FOO", "bar", "baz"}, "ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' "},
		{"unknown-no-args", []any{"nope"}, "ERR unknown command 'nope', with args beginning with: "},
		{"echo-arity", []any{"ECHO"}, "ERR wrong number of arguments for 'echo' command"},
		{"ping-arity", []any{"PING", "a", "b"}, "ERR wrong number of arguments for 'ping' command"},
		{"select-1", []any{"SELECT", 1}, "ERR DB index is out of range"},
		{"select-x", []any{"SELECT", "x"}, "ERR value is not an integer or out of range"},
		{"auth-no-password", []any{"AUTH", "x"}, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"},
		{"hello-4", []any{"HELLO", 4}, "NOPROTO unsupported protocol version"},
		{"client-unknown", []any{"CLIENT", "NOPE"}, "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."},
		{"dbsize-arity", []any{"DBSIZE", "x"}, "ERR wrong number of arguments for 'dbsize' command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, got := do(t, c, tt.args...)
			if got != tt.want {
				t.Fatalf("got reply %v error %q, want error %q", v, got, tt.want)
			}
		})
	}
	// Bad input changed nothing and the server is still up.
	if v, e := do(t, c, "DBSIZE"); e != "" || v.(int64) != 0 {
		t.Fatalf("DBSIZE after bad input: %v %q", v, e)
	}
	if v, _ := do(t, c, "THROTTLE.ACQUIRE", "k", 1000, 1); v.([]any)[0].(int64) != 1 {
		t.Fatalf("acquire after bad input: %v", v)
	}
}

func TestAcquireReplies(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ints := func(args ...any) []int64 {
		t.Helper()
		v, err := c.Do(context.Background(), args...).Int64Slice()
		if err != nil || len(v) != 5 {
			t.Fatalf("%v: %v %v", args, v, err)
		}
		return v
	}
	// Command names are case-insensitive.
	first := ints("throttle.Acquire", "k", 60000, 2)
	now := first[2]
	want := [][]int64{
		{1, 0, now, now + 6000, 0},
	}
	second := ints("THROTTLE.ACQUIRE", "k", 60000, 2)
	third := ints("THROTTLE.ACQUIRE", "k", 60000, 2, "slop", 0)
	denied := ints("THROTTLE.ACQUIRE", "k", 60000, 2)
	if first[0] != want[0][0] || first[1] != 0 || first[3] != now+6000 || first[4] != 0 {
		t.Fatalf("first %v", first)
	}
	// Reservations: slots last+interval, waits measured from cluster time.
	if second[0] != 1 || second[2] != now+60000 || second[3] != now+66000 || second[4] != 1 || second[1] <= 0 || second[1] > 60000 {
		t.Fatalf("second %v (first slot %d)", second, now)
	}
	if third[0] != 1 || third[2] != now+120000 || third[3] != now+120000 || third[4] != 2 {
		t.Fatalf("third %v", third)
	}
	// Denied: wait until the first pending slot opens, i.e. last-(max-1)*interval.
	if denied[0] != 0 || denied[2] != -1 || denied[3] != -1 || denied[4] != 2 || denied[1] <= 0 || denied[1] > 60000 {
		t.Fatalf("denied %v", denied)
	}
	// PEEK gives ACQUIRE's answer and changes nothing.
	p1 := ints("THROTTLE.PEEK", "k", 60000, 3)
	p2 := ints("THROTTLE.PEEK", "k", 60000, 3)
	if p1[0] != 1 || p1[2] != now+180000 || p2[2] != p1[2] {
		t.Fatalf("peek %v %v", p1, p2)
	}
	if v, _ := do(t, c, "DBSIZE"); v.(int64) != 1 {
		t.Fatalf("dbsize %v", v)
	}
	if v, _ := do(t, c, "THROTTLE.RESET", "k", "other", "k"); v.(int64) != 1 {
		t.Fatalf("reset %v", v)
	}
	if got := ints("THROTTLE.ACQUIRE", "k", 60000, 0); got[0] != 1 || got[1] != 0 {
		t.Fatalf("after reset %v", got)
	}
	info, _ := do(t, c, "INFO", "stats")
	// The denial was certain with nothing in flight: answered without the
	// log, so counted on this node, not in the replicated denials.
	for _, line := range []string{"throttle_grants:2", "throttle_reservations:2", "throttle_denials:0", "throttle_denials_fast:1"} {
		if !strings.Contains(info.(string), line+"\r\n") {
			t.Fatalf("INFO stats lacks %q:\n%s", line, info)
		}
	}
}

func TestAuth(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{RequirePass: "s3cret"})
	anon := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1})
	defer anon.Close()
	ctx := context.Background()
	if err := anon.Do(ctx, "THROTTLE.ACQUIRE", "k", 1, 1).Err(); err == nil || err.Error() != "NOAUTH Authentication required." {
		t.Fatalf("unauthenticated acquire: %v", err)
	}
	if err := anon.Do(ctx, "AUTH", "wrong").Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS ") {
		t.Fatalf("wrong password: %v", err)
	}
	bad := redis.NewClient(&redis.Options{Addr: n.Addr(), Password: "nope", MaxRetries: -1})
	defer bad.Close()
	if err := bad.Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "WRONGPASS") {
		t.Fatalf("go-redis with wrong password: %v", err)
	}
	// go-redis authenticates (HELLO 3 AUTH, so the session speaks RESP3)
	// and names the client; both must work.
	good := redis.NewClient(&redis.Options{Addr: n.Addr(), Password: "s3cret", ClientName: "worker-1", MaxRetries: -1})
	defer good.Close()
	if v, err := good.Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 1).Int64Slice(); err != nil || v[0] != 1 {
		t.Fatalf("authenticated acquire: %v %v", v, err)
	}
	if name, err := good.ClientGetName(ctx).Result(); err != nil || name != "worker-1" {
		t.Fatalf("client name %q %v", name, err)
	}
	if v, err := anon.Do(ctx, "HELLO", 2, "AUTH", "default", "s3cret", "SETNAME", "x").Slice(); err != nil || v[0] != "server" || v[1] != "throttledb" {
		t.Fatalf("HELLO 2 AUTH: %v %v", v, err)
	}
}

func TestBasics(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ctx := context.Background()
	checks := []struct {
		name string
		run  func() error
	}{
		{"ping", func() error { return expect(c.Ping(ctx).Val() == "PONG", "PING") }},
		{"ping-msg", func() error { return expect(c.Do(ctx, "ping", "hi").Val() == "hi", "PING hi") }},
		{"echo", func() error { return expect(c.Echo(ctx, "x y").Val() == "x y", "ECHO") }},
		{"select-0", func() error { return c.Do(ctx, "SELECT", 0).Err() }},
		{"client-id", func() error { return expect(c.ClientID(ctx).Val() > 0, "CLIENT ID") }},
		{"client-setinfo", func() error { return c.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "x").Err() }},
		{"command-count", func() error { return expect(c.Do(ctx, "COMMAND", "COUNT").Val().(int64) > 10, "COMMAND COUNT") }},
		{"command-docs", func() error { return c.Do(ctx, "COMMAND", "DOCS").Err() }},
		{"command", func() error { return expect(len(c.Do(ctx, "COMMAND").Val().([]any)) > 10, "COMMAND") }},
		{"config-get", func() error {
			v, err := c.ConfigGet(ctx, "save").Result()
			return expect(err == nil && len(v) == 1 && v["save"] == "", "CONFIG GET")
		}},
		{"time", func() error { return expect(c.Time(ctx).Val().Unix() > 1_600_000_000, "TIME") }},
		{"role", func() error { return expect(c.Do(ctx, "ROLE").Val().([]any)[0] == "master", "ROLE") }},
		{"info-raft", func() error {
			return expect(strings.Contains(c.Info(ctx, "raft").Val(), "raft_state:leader\r\n"), "INFO raft")
		}},
		{"info-all-sections", func() error {
			s := c.Info(ctx).Val()
			return expect(strings.Contains(s, "# Server") && strings.Contains(s, "# Clients") &&
				strings.Contains(s, "# Stats") && strings.Contains(s, "# Raft") && strings.Contains(s, "# Keyspace"), "INFO")
		}},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if err := ch.run(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func expect(ok bool, what string) error {
	if !ok {
		return errors.New(what + ": unexpected reply")
	}
	return nil
}
