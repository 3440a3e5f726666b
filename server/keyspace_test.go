package server_test

import (
	"context"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/testcluster"
)

const msgWrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"

// ints turns a reply of integers into a slice, failing on anything else.
func ints(t *testing.T, v any) []int64 {
	t.Helper()
	arr, ok := v.([]any)
	if !ok {
		t.Fatalf("reply %#v is not an array", v)
	}
	out := make([]int64, len(arr))
	for i, e := range arr {
		if out[i], ok = e.(int64); !ok {
			t.Fatalf("reply %#v: element %d is not an integer", v, i)
		}
	}
	return out
}

// TestCellThrottleContract checks CL.THROTTLE's replies and errors as a
// redis-cell client sees them.
func TestCellThrottleContract(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	replies := []struct {
		args []any
		want []int64
	}{
		// redis-cell's README.
		{[]any{"CL.THROTTLE", "user123", 15, 30, 60, 1}, []int64{0, 16, 15, -1, 2}},
		// quantity defaults to 1.
		{[]any{"cl.throttle", "user123", 15, 30, 60}, []int64{0, 16, 14, -1, 4}},
		// quantity 0 peeks.
		{[]any{"CL.THROTTLE", "user123", 15, 30, 60, 0}, []int64{0, 16, 14, -1, 4}},
		// redis-cell's end-to-end test: allowed, then limited.
		{[]any{"CL.THROTTLE", "e2e", 0, 1, 2, 1}, []int64{0, 1, 0, -1, 2}},
		{[]any{"CL.THROTTLE", "e2e", 0, 1, 2, 1}, []int64{1, 1, 0, 2, 2}},
		// A quantity above the limit never fits: no retry time.
		{[]any{"CL.THROTTLE", "big", 1, 1, 1, 3}, []int64{1, 2, 2, -1, 0}},
	}
	for _, r := range replies {
		v, e := do(t, c, r.args...)
		if e != "" {
			t.Fatalf("%v: %s", r.args, e)
		}
		if got := ints(t, v); !reflect.DeepEqual(got, r.want) {
			t.Fatalf("%v = %v, want %v", r.args, got, r.want)
		}
	}
	if _, e := do(t, c, "THROTTLE.ACQUIRE", "thr", 60000, 1); e != "" {
		t.Fatal(e)
	}
	errs := []struct {
		name string
		args []any
		want string
	}{
		{"arity-low", []any{"CL.THROTTLE", "k", 1, 1}, "ERR wrong number of arguments for 'cl.throttle' command"},
		{"arity-high", []any{"CL.THROTTLE", "k", 1, 1, 1, 1, 1}, "ERR wrong number of arguments for 'cl.throttle' command"},
		{"not-integer", []any{"CL.THROTTLE", "k", "x", 1, 1}, "ERR value is not an integer or out of range"},
		{"quantity-not-integer", []any{"CL.THROTTLE", "k", 1, 1, 1, "1.5"}, "ERR value is not an integer or out of range"},
		{"int64-overflow", []any{"CL.THROTTLE", "k", "9223372036854775808", 1, 1}, "ERR value is not an integer or out of range"},
		{"negative-burst", []any{"CL.THROTTLE", "k", -1, 1, 1}, "ERR max_burst must not be negative"},
		{"negative-count", []any{"CL.THROTTLE", "k", 1, -1, 1}, "ERR count_per_period must not be negative"},
		{"negative-period", []any{"CL.THROTTLE", "k", 1, 1, -1}, "ERR period must not be negative"},
		{"negative-quantity", []any{"CL.THROTTLE", "k", 1, 1, 1, -1}, "ERR quantity must not be negative"},
		{"zero-rate", []any{"CL.THROTTLE", "k", 1, 0, 1}, "ERR zero rates are not supported: count_per_period and period must be positive"},
		{"overflow", []any{"CL.THROTTLE", "k", "9223372036854775806", 1, 1}, "ERR max_burst, count_per_period, period or quantity too large: the rate limit arithmetic would overflow int64 nanoseconds"},
		{"empty-key", []any{"CL.THROTTLE", "", 1, 1, 1}, "ERR invalid key: keys must be 1 to 65536 bytes"},
		{"wrongtype-cell-on-throttle", []any{"CL.THROTTLE", "thr", 1, 1, 1}, msgWrongType},
		{"wrongtype-acquire-on-cell", []any{"THROTTLE.ACQUIRE", "user123", 1000, 1}, msgWrongType},
		{"wrongtype-peek-on-cell", []any{"THROTTLE.PEEK", "user123", 1000, 1}, msgWrongType},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if v, e := do(t, c, tt.args...); e != tt.want {
				t.Fatalf("got %v %q, want %q", v, e, tt.want)
			}
		})
	}
	if v, _ := do(t, c, "DBSIZE"); v != int64(3) { // user123, e2e, thr; "big" was limited, so never stored
		t.Fatalf("DBSIZE %v", v)
	}
}

// TestKeyspaceCommands covers the keyspace commands over both kinds of key.
func TestKeyspaceCommands(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ctx := context.Background()
	must := func(args ...any) any {
		t.Helper()
		v, e := do(t, c, args...)
		if e != "" {
			t.Fatalf("%v: %s", args, e)
		}
		return v
	}
	must("THROTTLE.ACQUIRE", "thr:1", 100_000, 1)
	must("CL.THROTTLE", "cell:1", 5, 1, 60)
	tests := []struct {
		args []any
		want any
	}{
		{[]any{"TYPE", "thr:1"}, "throttle"},
		{[]any{"TYPE", "cell:1"}, "cl.throttle"},
		{[]any{"TYPE", "nope"}, "none"},
		{[]any{"EXISTS", "thr:1", "cell:1", "nope", "thr:1"}, int64(3)},
		{[]any{"PTTL", "nope"}, int64(-2)},
		{[]any{"TTL", "nope"}, int64(-2)},
		{[]any{"DBSIZE"}, int64(2)},
		{[]any{"KEYS", "*:1"}, []any{"cell:1", "thr:1"}},
		{[]any{"KEYS", "c[ae]ll:?"}, []any{"cell:1"}},
		{[]any{"KEYS", "x*"}, []any{}},
	}
	for _, tt := range tests {
		v := must(tt.args...)
		if arr, ok := v.([]any); ok {
			sort.Slice(arr, func(i, j int) bool { return arr[i].(string) < arr[j].(string) })
		}
		if !reflect.DeepEqual(v, tt.want) {
			t.Fatalf("%v = %#v, want %#v", tt.args, v, tt.want)
		}
	}
	// Every key expires: a throttle at the end of its interval, a cell key
	// when its bucket is full again (one event at 1 per 60 s: 60 s).
	for _, k := range []struct {
		key    string
		lo, hi int64 // ms
	}{{"thr:1", 90_000, 100_000}, {"cell:1", 50_000, 60_000}} {
		pttl := must("PTTL", k.key).(int64)
		ttl := must("TTL", k.key).(int64)
		if pttl <= k.lo || pttl > k.hi || ttl < pttl/1000 || ttl > pttl/1000+1 {
			t.Fatalf("%s: PTTL %d TTL %d", k.key, pttl, ttl)
		}
	}
	if k := must("RANDOMKEY"); k != "thr:1" && k != "cell:1" {
		t.Fatalf("RANDOMKEY %v", k)
	}
	if v := must("DEL", "thr:1", "nope"); v != int64(1) {
		t.Fatalf("DEL %v", v)
	}
	if v := must("UNLINK", "cell:1", "cell:1"); v != int64(1) {
		t.Fatalf("UNLINK %v", v)
	}
	if v, err := c.RandomKey(ctx).Result(); err != redis.Nil {
		t.Fatalf("RANDOMKEY of an empty keyspace: %q %v, want a null reply", v, err)
	}
	// After DEL, a key's name may take the other kind.
	must("CL.THROTTLE", "thr:1", 1, 1, 600)
	if v := must("TYPE", "thr:1"); v != "cl.throttle" {
		t.Fatalf("TYPE %v", v)
	}

	// SCAN over 1000 keys of both kinds, with go-redis's iterator.
	// In one transaction: one log entry. (A pipeline that is not all
	// THROTTLE.ACQUIREs is served one command, and one commit, at a time.)
	var want []string
	pipe := c.TxPipeline()
	for i := range 1000 {
		k := "s:" + strconv.Itoa(i)
		want = append(want, k)
		if i%2 == 0 {
			pipe.Do(ctx, "THROTTLE.ACQUIRE", k, 100_000, 1)
		} else {
			pipe.Do(ctx, "CL.THROTTLE", k, 1, 1, 100)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	scanAll := func(match, typ string, count int64) []string {
		var got []string
		var it *redis.ScanIterator
		if typ == "" {
			it = c.Scan(ctx, 0, match, count).Iterator()
		} else {
			it = c.ScanType(ctx, 0, match, count, typ).Iterator()
		}
		for it.Next(ctx) {
			got = append(got, it.Val())
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		sort.Strings(got)
		return got
	}
	sort.Strings(want)
	if got := scanAll("s:*", "", 37); !reflect.DeepEqual(got, want) {
		t.Fatalf("SCAN returned %d keys, want %d", len(got), len(want))
	}
	if got := scanAll("s:*", "throttle", 100); len(got) != 500 {
		t.Fatalf("SCAN TYPE throttle: %d keys", len(got))
	}
	if got := scanAll("", "CL.THROTTLE", 0); len(got) != 501 { // and thr:1
		t.Fatalf("SCAN TYPE cl.throttle: %d keys", len(got))
	}
	if got := scanAll("s:99?", "", 10); !reflect.DeepEqual(got, []string{"s:990", "s:991", "s:992", "s:993", "s:994", "s:995", "s:996", "s:997", "s:998", "s:999"}) {
		t.Fatalf("SCAN MATCH s:99?: %v", got)
	}
	if got := scanAll("", "hash", 1000); len(got) != 0 {
		t.Fatalf("SCAN TYPE hash: %v", got)
	}
	// One SCAN call with COUNT visits about that many keys.
	v := must("SCAN", 0, "COUNT", 5).([]any)
	if keys := v[1].([]any); len(keys) > 5 || v[0] == "0" {
		t.Fatalf("SCAN 0 COUNT 5: %v", v)
	}

	for _, tt := range []struct {
		args []any
		want string
	}{
		{[]any{"SCAN", "x"}, "ERR invalid cursor"},
		{[]any{"SCAN", "18446744073709551616"}, "ERR invalid cursor"},
		{[]any{"SCAN", 0, "COUNT", 0}, "ERR syntax error"},
		{[]any{"SCAN", 0, "COUNT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"SCAN", 0, "MATCH"}, "ERR syntax error"},
		{[]any{"SCAN", 0, "FOO", 1}, "ERR syntax error"},
		{[]any{"SCAN"}, "ERR wrong number of arguments for 'scan' command"},
		{[]any{"KEYS"}, "ERR wrong number of arguments for 'keys' command"},
		{[]any{"TYPE"}, "ERR wrong number of arguments for 'type' command"},
		{[]any{"TTL", "a", "b"}, "ERR wrong number of arguments for 'ttl' command"},
		{[]any{"EXISTS"}, "ERR wrong number of arguments for 'exists' command"},
		{[]any{"DEL"}, "ERR wrong number of arguments for 'del' command"},
		{[]any{"UNLINK", ""}, "ERR invalid key: keys must be 1 to 65536 bytes"},
		{[]any{"RANDOMKEY", "x"}, "ERR wrong number of arguments for 'randomkey' command"},
		{[]any{"FLUSHALL", "NOW"}, "ERR syntax error"},
		{[]any{"FLUSHDB", "SYNC", "ASYNC"}, "ERR syntax error"},
	} {
		if v, e := do(t, c, tt.args...); e != tt.want {
			t.Fatalf("%v: got %v %q, want %q", tt.args, v, e, tt.want)
		}
	}

	for _, flush := range [][]any{{"FLUSHALL"}, {"FLUSHDB", "async"}, {"FLUSHALL", "SYNC"}} {
		must("THROTTLE.ACQUIRE", "again", 100_000, 1)
		if v := must(flush...); v != "OK" {
			t.Fatalf("%v: %v", flush, v)
		}
		if v := must("DBSIZE"); v != int64(0) {
			t.Fatalf("DBSIZE after %v: %v", flush, v)
		}
	}
}

// TestKeyspaceTransactionsAndFollowers runs the commands that go through
// the log inside MULTI/EXEC and from a follower, which forwards them
// (CL.THROTTLE's result travels back to the follower), and checks that a
// follower's reads see the leader's writes once applied.
func TestKeyspaceTransactionsAndFollowers(t *testing.T) {
	cl := testcluster.Start(t, 3, testcluster.Options{})
	leader := cl.Leader()
	f := cl.Followers()[0].Client()
	ctx := context.Background()

	v, e := do(t, f, "CL.THROTTLE", "fwd", 15, 30, 60)
	if e != "" || !reflect.DeepEqual(ints(t, v), []int64{0, 16, 15, -1, 2}) {
		t.Fatalf("CL.THROTTLE through a follower: %v %q", v, e)
	}
	if _, e := do(t, f, "THROTTLE.ACQUIRE", "fwd", 1000, 1); e != msgWrongType {
		t.Fatalf("WRONGTYPE through a follower: %q", e)
	}

	var del *redis.Cmd
	if _, err := f.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "CL.THROTTLE", "tx", 0, 1, 60)
		del = p.Do(ctx, "DEL", "tx", "fwd")
		p.Do(ctx, "FLUSHDB")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if del.Val() != int64(2) {
		t.Fatalf("DEL in EXEC through a follower: %v", del.Val())
	}
	testcluster.WaitFor(t, 10*time.Second, "every node to apply the FLUSHDB", func() bool {
		for _, n := range cl.Running() {
			if n.Server.FSM().DBSize(0) != 0 {
				return false
			}
		}
		return true
	})

	if _, e := do(t, leader.Client(), "CL.THROTTLE", "rep", 1, 1, 60); e != "" {
		t.Fatal(e)
	}
	testcluster.WaitFor(t, 10*time.Second, "the follower to see the key", func() bool {
		v, _ := do(t, f, "TYPE", "rep")
		return v == "cl.throttle"
	})
	keys, err := f.Keys(ctx, "*").Result()
	if err != nil || !reflect.DeepEqual(keys, []string{"rep"}) {
		t.Fatalf("KEYS on a follower: %v %v", keys, err)
	}
	// The replicas agree on the state, cell keys included.
	testcluster.WaitFor(t, 10*time.Second, "equal states", func() bool {
		want := leader.Server.FSM().Keys(0)
		for _, n := range cl.Running() {
			if !reflect.DeepEqual(n.Server.FSM().Keys(0), want) {
				return false
			}
		}
		return want["rep"].Cell
	})
}

// TestTransactionReplies checks EXEC's replies for the new commands.
func TestTransactionReplies(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ctx := context.Background()
	var a, b, d, fl *redis.Cmd
	if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		a = p.Do(ctx, "CL.THROTTLE", "tx", 0, 1, 60)
		b = p.Do(ctx, "CL.THROTTLE", "tx", 0, 1, 60)
		d = p.Do(ctx, "DEL", "tx", "nope")
		fl = p.Do(ctx, "FLUSHALL")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := ints(t, a.Val()); !reflect.DeepEqual(got, []int64{0, 1, 0, -1, 60}) {
		t.Fatalf("first: %v", got)
	}
	if got := ints(t, b.Val()); !reflect.DeepEqual(got, []int64{1, 1, 0, 60, 60}) {
		t.Fatalf("second: %v", got)
	}
	if d.Val() != int64(1) || fl.Val() != "OK" {
		t.Fatalf("DEL %v FLUSHALL %v", d.Val(), fl.Val())
	}
}

// TestCellMaxMemory: a CL.THROTTLE that would create a key is refused when
// the state is full; one on an existing key, and a peek, are not.
func TestCellMaxMemory(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{MaxMemory: 2 * fsm.KeyCost("key:0")})
	c := n.Client()
	for _, k := range []string{"key:0", "key:1"} {
		if _, e := do(t, c, "CL.THROTTLE", k, 5, 1, 60); e != "" {
			t.Fatal(e)
		}
	}
	if _, e := do(t, c, "CL.THROTTLE", "key:2", 5, 1, 60); e != msgOOM {
		t.Fatalf("new key when full: %q", e)
	}
	if _, e := do(t, c, "CL.THROTTLE", "key:2", 5, 1, 60, 0); e != "" {
		t.Fatalf("peek when full: %q", e)
	}
	if _, e := do(t, c, "CL.THROTTLE", "key:0", 5, 1, 60); e != "" {
		t.Fatalf("existing key when full: %q", e)
	}
}

// TestRedisCLIScan runs redis-cli --scan, which walks SCAN's cursor.
func TestRedisCLIScan(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	var in strings.Builder
	for i := range 250 {
		in.WriteString("CL.THROTTLE k" + strconv.Itoa(i) + " 1 1 600\n")
	}
	redisCLI(t, n.Addr(), in.String())
	out := redisCLI(t, n.Addr(), "", "--scan")
	if len(out) != 250 {
		t.Fatalf("redis-cli --scan printed %d keys, want 250", len(out))
	}
	out = redisCLI(t, n.Addr(), "", "--scan", "--pattern", "k1?")
	sort.Strings(out)
	if want := []string{"k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19"}; !reflect.DeepEqual(out, want) {
		t.Fatalf("redis-cli --scan --pattern k1?: %v", out)
	}
}
