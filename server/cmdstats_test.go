package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestCommandStatsPipelined checks INFO commandstats over pipelines that
// mix commands, successes and failures: the server reads the clock once per
// run of calls of one command, and every call must still be counted, once,
// under its own name, with its failure.
func TestCommandStatsPipelined(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	c := n.Client()
	ctx := context.Background()
	acquire := []any{"THROTTLE.ACQUIRE", "k", 60000, 1000}
	bad := []any{"THROTTLE.ACQUIRE", "k", "x", 5} // not an integer: a failed call
	ping := []any{"PING"}
	peek := []any{"THROTTLE.PEEK", "k", 60000, 1000}
	pipelines := [][][]any{
		{acquire, acquire, acquire},
		{acquire, bad, acquire, ping, ping, acquire},
		{ping, acquire, peek, acquire, bad, bad},
		{peek, peek, ping},
		{acquire},
	}
	for _, p := range pipelines {
		sendPipeline(c, p)
	}
	info := testcluster.ParseInfo(c.Info(ctx, "commandstats").Val())
	tests := []struct {
		key  string
		want map[string]string
	}{
		{"cmdstat_throttle.acquire", map[string]string{"calls": "12", "failed_calls": "3", "rejected_calls": "0"}},
		{"cmdstat_ping", map[string]string{"calls": "4", "failed_calls": "0"}},
		{"cmdstat_throttle.peek", map[string]string{"calls": "3", "failed_calls": "0"}},
	}
	for _, tt := range tests {
		fields := parseFields(info[tt.key])
		for k, want := range tt.want {
			if got := fields[k]; got != want {
				t.Errorf("%s %s = %q, want %q (%s)", tt.key, k, got, want, info[tt.key])
			}
		}
		if fields["usec"] == "" || fields["usec_per_call"] == "" {
			t.Errorf("%s has no time: %s", tt.key, info[tt.key])
		}
	}
}

// parseFields splits an INFO value "a=1,b=2" into its fields.
func parseFields(value string) map[string]string {
	fields := map[string]string{}
	for _, kv := range strings.Split(value, ",") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	return fields
}
