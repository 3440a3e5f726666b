package server_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// clientFields are Redis 7.2's CLIENT LIST fields, in its order.
var clientFields = strings.Fields("id addr laddr fd name age idle flags db sub psub ssub multi qbuf qbuf-free argv-mem multi-mem obl oll omem tot-mem events cmd user redir resp lib-name lib-ver")

// parseClientLine checks that line has exactly clientFields, in order, and
// returns them.
func parseClientLine(t *testing.T, line string) map[string]string {
	t.Helper()
	parts := strings.Split(strings.TrimSpace(line), " ")
	if len(parts) != len(clientFields) {
		t.Fatalf("client line has %d fields, want %d: %q", len(parts), len(clientFields), line)
	}
	out := map[string]string{}
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k != clientFields[i] {
			t.Fatalf("field %d is %q, want %s=...: %q", i, p, clientFields[i], line)
		}
		out[k] = v
	}
	return out
}

func TestClientListInfoKill(t *testing.T) {
	// Its own address: CLIENT LIST must show this test's clients only, not
	// a stray connection from another test's node to a reused port.
	n := testcluster.StartNode(t, testcluster.Options{Configure: privateAddr})
	ctx := context.Background()
	newClient := func(name string, proto int) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: n.Addr(), ClientName: name, Protocol: proto, PoolSize: 1, MaxRetries: -1, DisableIdentity: true})
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := newClient("alpha", 3), newClient("beta", 2)
	if err := b.Do(ctx, "CLIENT", "SETINFO", "LIB-NAME", "mylib").Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(ctx, "CLIENT", "SETINFO", "LIB-VER", "1.2").Err(); err != nil {
		t.Fatal(err)
	}

	info := parseClientLine(t, a.Do(ctx, "CLIENT", "INFO").Val().(string))
	aID := a.Do(ctx, "CLIENT", "ID").Val().(int64)
	if info["id"] != itoaTest(aID) || info["name"] != "alpha" || info["cmd"] != "client|info" ||
		info["laddr"] != n.Addr() || info["multi"] != "-1" || info["flags"] != "N" || info["resp"] != "3" || info["user"] != "default" {
		t.Errorf("CLIENT INFO: %v", info)
	}

	list := a.Do(ctx, "CLIENT", "LIST").Val().(string)
	lines := strings.Split(strings.TrimSuffix(list, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("CLIENT LIST: %d lines, want 2:\n%s", len(lines), list)
	}
	byName := map[string]map[string]string{}
	for _, l := range lines {
		f := parseClientLine(t, l)
		byName[f["name"]] = f
	}
	if f := byName["beta"]; f == nil || f["lib-name"] != "mylib" || f["lib-ver"] != "1.2" || f["resp"] != "2" || f["cmd"] != "client|setinfo" {
		t.Errorf("CLIENT LIST beta: %v", f)
	}
	if f := byName["alpha"]; f == nil || f["cmd"] != "client|list" {
		t.Errorf("CLIENT LIST alpha: %v", f)
	}
	bID := byName["beta"]["id"]
	if got := a.Do(ctx, "CLIENT", "LIST", "ID", bID).Val().(string); !strings.Contains(got, "name=beta") || strings.Contains(got, "name=alpha") {
		t.Errorf("CLIENT LIST ID %s: %q", bID, got)
	}
	if got := a.Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Val(); got != "" {
		t.Errorf("CLIENT LIST TYPE pubsub: %q", got)
	}

	// MULTI shows in the flags and the count of queued commands.
	bc := b.Conn()
	t.Cleanup(func() { bc.Close() })
	_ = bc.Do(ctx, "MULTI").Err()
	_ = bc.Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 1).Err()
	tx := parseClientLine(t, strings.TrimSpace(a.Do(ctx, "CLIENT", "LIST", "ID", bID).Val().(string)))
	if tx["flags"] != "x" || tx["multi"] != "1" {
		t.Errorf("client in MULTI: flags %s multi %s", tx["flags"], tx["multi"])
	}

	tests := []struct {
		name string
		args []any
		want string
	}{
		{"old-form-unknown", []any{"CLIENT", "KILL", "10.0.0.1:1"}, "ERR No such client"},
		{"bad-id", []any{"CLIENT", "KILL", "ID", "0"}, "ERR client-id should be greater than 0"},
		{"bad-filter", []any{"CLIENT", "KILL", "COLOR", "red"}, "ERR syntax error"},
		{"odd-args", []any{"CLIENT", "KILL", "ID", "1", "SKIPME"}, "ERR syntax error"},
		{"bad-skipme", []any{"CLIENT", "KILL", "SKIPME", "maybe"}, "ERR syntax error"},
		{"list-bad-id", []any{"CLIENT", "LIST", "ID", "x"}, "ERR Invalid client ID"},
		{"list-bad-type", []any{"CLIENT", "LIST", "TYPE", "x"}, "ERR Unknown client type 'x'"},
	}
	for _, tt := range tests {
		if _, msg := do(t, a, tt.args...); msg != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, msg, tt.want)
		}
	}
	if v, _ := do(t, a, "CLIENT", "KILL", "ID", aID); v != int64(0) {
		t.Errorf("CLIENT KILL ID self (SKIPME yes): %v, want 0", v)
	}
	if v, _ := do(t, a, "CLIENT", "KILL", "ID", bID); v != int64(1) {
		t.Errorf("CLIENT KILL ID beta: %v, want 1", v)
	}
	if err := bc.Do(ctx, "PING").Err(); err == nil {
		t.Error("the killed connection still answers")
	}
	waitFor(t, "the killed client leaves CLIENT LIST", func() bool {
		return !strings.Contains(a.Do(ctx, "CLIENT", "LIST").Val().(string), "name=beta")
	})

	// The old form, by address.
	c := newClient("gamma", 2)
	addr := parseClientLine(t, c.Do(ctx, "CLIENT", "INFO").Val().(string))["addr"]
	if v, msg := do(t, a, "CLIENT", "KILL", addr); v != "OK" {
		t.Errorf("CLIENT KILL %s: %v %s", addr, v, msg)
	}
	waitFor(t, "the killed client leaves CLIENT LIST", func() bool {
		return !strings.Contains(a.Do(ctx, "CLIENT", "LIST").Val().(string), "name=gamma")
	})
}

func itoaTest(n int64) string { return strconv.FormatInt(n, 10) }

// infoHeaders returns the "# Section" headers of an INFO reply, in order.
func infoHeaders(info string) []string {
	var out []string
	for _, l := range strings.Split(info, "\r\n") {
		if h, ok := strings.CutPrefix(l, "# "); ok {
			out = append(out, h)
		}
	}
	return out
}

func TestInfoSections(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{Configure: privateAddr}) // counts errors: see TestClientListInfoKill

	c := n.Client()
	ctx := context.Background()
	// One grant, one failed call (bad argument), one rejected (arity),
	// an unknown command: commandstats and errorstats count them. The
	// client's own handshake may have had errors of its own (go-redis
	// tries subcommands throttledb does not have): count from here.
	before := testcluster.ParseInfo(c.Info(ctx, "errorstats", "stats").Val())
	errCount := func(info map[string]string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(info["errorstat_ERR"], "count="))
		return n
	}
	total := func(info map[string]string) int {
		n, _ := strconv.Atoi(info["total_error_replies"])
		return n
	}
	do(t, c, "THROTTLE.ACQUIRE", "k", 60000, 5)
	do(t, c, "THROTTLE.ACQUIRE", "k", "x", 5)
	do(t, c, "THROTTLE.ACQUIRE", "k")
	do(t, c, "NOSUCH")
	do(t, c, "CLIENT", "ID")

	const dflt = "Server Clients Memory Persistence Stats Replication CPU Errorstats Cluster Raft Latency Keyspace"
	const all = "Server Clients Memory Persistence Stats Replication CPU Commandstats Errorstats Cluster Raft Latency Keyspace"
	tests := []struct {
		args    []any
		headers string
	}{
		{[]any{"INFO"}, dflt},
		{[]any{"INFO", "default"}, dflt},
		{[]any{"INFO", "all"}, all},
		{[]any{"INFO", "everything"}, all},
		{[]any{"INFO", "cpu", "MEMORY"}, "Memory CPU"},
		{[]any{"INFO", "default", "commandstats"}, all},
		{[]any{"INFO", "nosuch"}, ""},
	}
	for _, tt := range tests {
		v, msg := do(t, c, tt.args...)
		if msg != "" {
			t.Fatalf("%v: %s", tt.args, msg)
		}
		if got := strings.Join(infoHeaders(v.(string)), " "); got != tt.headers {
			t.Errorf("%v: sections %q, want %q", tt.args, got, tt.headers)
		}
	}

	info := testcluster.ParseInfo(c.Info(ctx, "everything").Val())
	for _, k := range []string{"used_memory", "used_memory_rss", "maxmemory", "used_cpu_sys", "used_cpu_user"} {
		if v := info[k]; v == "" || strings.HasPrefix(v, "-") {
			t.Errorf("INFO %s = %q", k, v)
		}
	}
	for _, k := range []string{"used_memory_human", "used_memory_rss_human", "maxmemory_human"} {
		if !regexp.MustCompile(`^\d+(B|\.\d\d[KMGTP])$`).MatchString(info[k]) {
			t.Errorf("INFO %s = %q", k, info[k])
		}
	}
	want := map[string]string{
		"blocked_clients":          "0",
		"maxmemory_policy":         "noeviction",
		"role":                     "master",
		"connected_slaves":         "0",
		"aof_enabled":              "1",
		"cluster_enabled":          "0",
		"cmdstat_client|id":        "",
		"cmdstat_throttle.acquire": "",
	}
	for k, v := range want {
		if got, ok := info[k]; !ok || (v != "" && got != v) {
			t.Errorf("INFO %s = %q, want %q", k, got, v)
		}
	}
	if errCount(info)-errCount(before) != 3 || total(info)-total(before) != 3 {
		t.Errorf("error replies: errorstat_ERR %s then %s, total_error_replies %s then %s; want 3 more",
			before["errorstat_ERR"], info["errorstat_ERR"], before["total_error_replies"], info["total_error_replies"])
	}
	acq := regexp.MustCompile(`^calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=1,failed_calls=1$`)
	if !acq.MatchString(info["cmdstat_throttle.acquire"]) {
		t.Errorf("cmdstat_throttle.acquire:%s", info["cmdstat_throttle.acquire"])
	}
	if !strings.HasPrefix(info["cmdstat_client|id"], "calls=1,") {
		t.Errorf("cmdstat_client|id:%s", info["cmdstat_client|id"])
	}
}

// TestInfoReplication checks INFO replication on a cluster: the leader is
// a master with two replicas, a follower a slave of the leader's address.
func TestInfoReplication(t *testing.T) {
	cl := testcluster.Start(t, 3, testcluster.Options{})
	leader := cl.WaitForLeader(10 * time.Second)
	ctx := context.Background()
	info := testcluster.ParseInfo(leader.Client().Info(ctx, "replication").Val())
	if info["role"] != "master" || info["connected_slaves"] != "2" || !strings.HasPrefix(info["slave0"], "ip=127.0.0.1,port=") {
		t.Errorf("leader: %v", info)
	}
	host, port, _ := strings.Cut(leader.Addr(), ":")
	for _, f := range cl.Followers() {
		waitFor(t, "a follower that knows the leader", func() bool {
			info := testcluster.ParseInfo(f.Client().Info(ctx, "replication").Val())
			return info["role"] == "slave" && info["master_host"] == host && info["master_port"] == port && info["master_link_status"] == "up"
		})
	}
}
