package server_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// asMap turns a RESP3 map or a RESP2 flat array of pairs into a Go map.
func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	out := map[string]any{}
	switch m := v.(type) {
	case map[any]any:
		for k, v := range m {
			out[k.(string)] = v
		}
	case []any:
		if len(m)%2 != 0 {
			t.Fatalf("odd-length map array: %v", m)
		}
		for i := 0; i < len(m); i += 2 {
			out[m[i].(string)] = m[i+1]
		}
	default:
		t.Fatalf("not a map: %T %v", v, v)
	}
	return out
}

// TestCommandDocs reads COMMAND DOCS, COMMAND INFO, COMMAND LIST and COMMAND
// COUNT with go-redis in RESP2 and RESP3, and checks that they agree and
// describe every command in Redis 7's shapes.
func TestCommandDocs(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	ctx := context.Background()
	for _, proto := range []int{2, 3} {
		c := redis.NewClient(&redis.Options{Addr: n.Addr(), Protocol: proto})
		t.Cleanup(func() { c.Close() })

		names, err := c.Do(ctx, "COMMAND", "LIST").StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		count, err := c.Do(ctx, "COMMAND", "COUNT").Int()
		if err != nil || count != len(names) || !slices.Contains(names, "throttle.acquire") {
			t.Fatalf("RESP%d: COMMAND COUNT %d (%v), COMMAND LIST %v", proto, count, err, names)
		}

		// go-redis parses COMMAND's 10-element Redis 7 entries.
		infos, err := c.Command(ctx).Result()
		if err != nil {
			t.Fatalf("RESP%d COMMAND: %v", proto, err)
		}
		if len(infos) != count {
			t.Errorf("RESP%d: COMMAND has %d entries, COMMAND COUNT %d", proto, len(infos), count)
		}
		acq := infos["throttle.acquire"]
		if acq == nil || acq.Arity != -4 || acq.FirstKeyPos != 1 || acq.LastKeyPos != 1 || acq.StepCount != 1 ||
			!slices.Contains(acq.Flags, "write") || !slices.Contains(acq.ACLFlags, "@write") {
			t.Errorf("RESP%d: COMMAND INFO throttle.acquire: %+v", proto, acq)
		}
		if ping := infos["ping"]; ping == nil || ping.FirstKeyPos != 0 || !slices.Contains(ping.ACLFlags, "@connection") {
			t.Errorf("RESP%d: COMMAND INFO ping: %+v", proto, ping)
		}

		// Key specs and subcommands: the 9th and 10th fields.
		raw, err := c.Do(ctx, "COMMAND", "INFO", "throttle.reset", "nosuch", "client|list").Slice()
		if err != nil || len(raw) != 3 || raw[1] != nil {
			t.Fatalf("RESP%d COMMAND INFO: %v %v", proto, raw, err)
		}
		reset := raw[0].([]any)
		specs := reset[8].([]any)
		if len(reset) != 10 || len(specs) != 1 {
			t.Fatalf("RESP%d COMMAND INFO throttle.reset: %v", proto, reset)
		}
		spec := asMap(t, specs[0])
		find := asMap(t, asMap(t, spec["find_keys"])["spec"])
		if find["lastkey"] != int64(-1) || asMap(t, asMap(t, spec["begin_search"])["spec"])["index"] != int64(1) {
			t.Errorf("RESP%d: throttle.reset key spec %v", proto, spec)
		}
		if list := raw[2].([]any); list[0] != "client|list" || list[1] != int64(-2) {
			t.Errorf("RESP%d: COMMAND INFO client|list: %v", proto, list)
		}

		all, err := c.Do(ctx, "COMMAND", "DOCS").Result()
		if err != nil {
			t.Fatal(err)
		}
		docs := asMap(t, all)
		if len(docs) != count {
			t.Errorf("RESP%d: COMMAND DOCS has %d entries, want %d", proto, len(docs), count)
		}
		for _, name := range names {
			d, ok := docs[name]
			if !ok {
				t.Errorf("RESP%d: COMMAND DOCS lacks %s", proto, name)
				continue
			}
			m := asMap(t, d)
			for _, k := range []string{"summary", "since", "group", "complexity"} {
				if s, _ := m[k].(string); s == "" {
					t.Errorf("RESP%d: COMMAND DOCS %s: no %s in %v", proto, name, k, m)
				}
			}
		}
		// One command asked for by name, in another case; unknown names
		// are left out, as Redis does.
		one, err := c.Do(ctx, "COMMAND", "DOCS", "THROTTLE.ACQUIRE", "nosuch").Result()
		if err != nil {
			t.Fatal(err)
		}
		docs = asMap(t, one)
		acqDoc := asMap(t, docs["throttle.acquire"])
		if len(docs) != 1 || acqDoc["group"] != "module" || acqDoc["module"] != "throttledb" {
			t.Fatalf("RESP%d: COMMAND DOCS THROTTLE.ACQUIRE: %v", proto, docs)
		}
		var args []string
		for _, a := range acqDoc["arguments"].([]any) {
			m := asMap(t, a)
			desc := m["name"].(string) + ":" + m["type"].(string)
			if tok, ok := m["token"]; ok {
				desc = tok.(string) + " " + desc
			}
			if fl, ok := m["flags"]; ok {
				desc += fmtFlags(fl)
			}
			args = append(args, desc)
		}
		if want := "key:key interval:integer max:integer SLOP ms:integer[optional] COST n:integer[optional] ID token:string[optional]"; strings.Join(args, " ") != want {
			t.Errorf("RESP%d: throttle.acquire arguments %q, want %q", proto, strings.Join(args, " "), want)
		}
	}
}

// fmtFlags formats a RESP2 array or RESP3 set of flags.
func fmtFlags(v any) string {
	var fl []string
	switch s := v.(type) {
	case []any:
		for _, f := range s {
			fl = append(fl, f.(string))
		}
	case map[any]struct{}:
		for f := range s {
			fl = append(fl, f.(string))
		}
		slices.Sort(fl)
	}
	return "[" + strings.Join(fl, ",") + "]"
}

// TestRedisCLIHelp checks that redis-cli builds its help from COMMAND DOCS:
// `help THROTTLE.ACQUIRE` prints the argument synopsis and summary, and
// a subcommand's help works too.
func TestRedisCLIHelp(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"help", "THROTTLE.ACQUIRE"}, []string{"THROTTLE.ACQUIRE", "key interval max [SLOP ms] [COST n] [ID token]", "Takes a slot of a throttle", "group:", "module"}},
		{[]string{"help", "throttle.reset"}, []string{"THROTTLE.RESET", "key [key ...]"}},
		{[]string{"help", "CLIENT", "LIST"}, []string{"CLIENT LIST", "[ID client-id [client-id ...]]", "Lists open connections"}},
		{[]string{"help", "PING"}, []string{"PING", "[message]", "connection"}},
	}
	for _, tt := range tests {
		out := strings.Join(redisCLI(t, n.Addr(), "", tt.args...), "\n")
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("redis-cli %v: no %q in\n%s", tt.args, w, out)
			}
		}
	}
}

// TestConfigGet checks CONFIG GET's parameters, glob patterns and several
// patterns at once (Redis 7), and that the password is never in a reply.
func TestConfigGet(t *testing.T) {
	const password = "config-get-secret"
	n := testcluster.StartNode(t, testcluster.Options{RequirePass: password})
	c := n.Client()
	ctx := context.Background()
	tests := []struct {
		patterns []any
		want     map[string]string
	}{
		{[]any{"save"}, map[string]string{"save": ""}},
		{[]any{"appendonly"}, map[string]string{"appendonly": "yes"}},
		{[]any{"SAVE", "appendonly"}, map[string]string{"save": "", "appendonly": "yes"}},
		{[]any{"*max*"}, map[string]string{"maxmemory": "0", "maxmemory-policy": "noeviction", "maxclients": "10000", "proto-max-bulk-len": "536870912"}},
		{[]any{"timeout", "client-query-buffer-limit", "protected-mode"}, map[string]string{"timeout": "0", "client-query-buffer-limit": "1073741824", "protected-mode": "yes"}},
		{[]any{"max*", "maxclients"}, map[string]string{"maxmemory": "0", "maxmemory-policy": "noeviction", "maxclients": "10000"}},
		{[]any{"requirepass"}, map[string]string{}},
		{[]any{"nosuch*"}, map[string]string{}},
	}
	for _, tt := range tests {
		v, err := c.Do(ctx, append([]any{"CONFIG", "GET"}, tt.patterns...)...).Result()
		if err != nil {
			t.Fatalf("CONFIG GET %v: %v", tt.patterns, err)
		}
		m := asMap(t, v)
		if len(m) != len(tt.want) {
			t.Errorf("CONFIG GET %v: %v, want %v", tt.patterns, m, tt.want)
		}
		for k, w := range tt.want {
			if m[k] != w {
				t.Errorf("CONFIG GET %v: %s = %v, want %q", tt.patterns, k, m[k], w)
			}
		}
	}
	all, err := c.Do(ctx, "CONFIG", "GET", "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range asMap(t, all) {
		if strings.Contains(k, "pass") || v == password {
			t.Errorf("CONFIG GET * reveals %s = %v", k, v)
		}
	}
	if _, msg := do(t, c, "CONFIG", "GET"); msg != "ERR wrong number of arguments for 'config|get' command" {
		t.Errorf("CONFIG GET without a pattern: %q", msg)
	}
}

// TestRedisBenchmarkConfig runs redis-benchmark, which reads CONFIG GET save
// and appendonly at start and warns when it cannot.
func TestRedisBenchmarkConfig(t *testing.T) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-benchmark not installed; .ci/run installs redis-tools")
		}
		t.Skip("redis-benchmark not installed (apt-get install redis-tools)")
	}
	n := testcluster.StartNode(t, testcluster.Options{})
	host, port, _ := strings.Cut(n.Addr(), ":")
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "ping", "-n", "200", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("redis-benchmark: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "WARNING") || !strings.Contains(string(out), "PING_MBULK") {
		t.Errorf("redis-benchmark output:\n%s", out)
	}
}
