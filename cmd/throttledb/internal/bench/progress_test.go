package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestProgressLines drives the progress reporter with a made-up clock:
// each line covers the window since the previous tick.
func TestProgressLines(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name    string
		inPlace bool
		want    string
	}{
		{"lines", false, "" +
			"bench:   1s       300 ops/s  p99=2.000ms  errors=1\n" +
			"bench:   3s        50 ops/s  p99=0.000ms  errors=0\n" +
			"bench:   4s         8 ops/s  p99=9.000ms  errors=8\n"},
		{"in place", true, "" +
			"\r\x1b[Kbench:   1s       300 ops/s  p99=2.000ms  errors=1" +
			"\r\x1b[Kbench:   3s        50 ops/s  p99=0.000ms  errors=0" +
			"\r\x1b[Kbench:   4s         8 ops/s  p99=9.000ms  errors=8\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newProgress(&out, tc.inPlace, t0)
			// Second 1: 100 round trips of 3 commands, 98 at 1 ms and two
			// at 2 ms (the 99th is the p99), one failed command.
			for i := range 100 {
				d := time.Millisecond
				if i >= 98 {
					d = 2 * time.Millisecond
				}
				errs := int64(0)
				if i == 0 {
					errs = 1
				}
				p.record(d, 3, errs)
			}
			p.tick(t0.Add(time.Second))
			// Seconds 2-3: 100 commands without latencies recorded in
			// this window (a window holds only what came after its
			// start), over 2 s.
			p.cur.Load().ops.Add(100)
			p.tick(t0.Add(3 * time.Second))
			// Second 4: one pipeline of 8 commands, all failed.
			p.record(9*time.Millisecond, 8, 8)
			p.tick(t0.Add(4 * time.Second))
			p.finish()
			if got := out.String(); got != tc.want {
				t.Fatalf("progress output\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
	// Nothing printed: finish adds nothing.
	var out bytes.Buffer
	newProgress(&out, true, t0).finish()
	if out.Len() != 0 {
		t.Fatalf("finish without a tick wrote %q", out.String())
	}
}

// TestRunProgress runs a real load with progress ticks the test sends: a
// line per tick, to the Progress writer only.
func TestRunProgress(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	ticks := make(chan time.Time)
	cfg := shortRun([]string{n.Addr()}, TargetThrottleDB, 1)
	cfg.Duration = time.Hour // ended by the test, after its ticks
	var progressOut bytes.Buffer
	cfg.Progress = &progressOut
	cfg.progressTicks = ticks
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, cfg, &out)
	}()
	for i := 1; i <= 3; i++ {
		// Received only once the run is under way; the times are made up
		// (hours ahead), the lines must still be well formed.
		select {
		case ticks <- time.Now().Add(time.Duration(i) * time.Hour):
		case <-done:
			t.Fatalf("Run returned before its progress ticks:\n%s", out.String())
		}
	}
	cancel()
	<-done
	line := regexp.MustCompile(`^bench: +\d+s +\d+ ops/s  p99=\d+\.\d{3}ms  errors=\d+$`)
	lines := strings.Split(strings.TrimSuffix(progressOut.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d progress lines, want 3:\n%s", len(lines), progressOut.String())
	}
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Errorf("progress line %q does not match %v", l, line)
		}
	}
	if strings.Contains(out.String(), "ops/s  p99=") {
		t.Errorf("progress lines reached the report's writer:\n%s", out.String())
	}
}

// TestResultJSON pins the JSON shape of a result (`throttledb bench
// --json`): names, units and nesting.
func TestResultJSON(t *testing.T) {
	r := Result{
		Config: Config{Target: TargetThrottleDB, Clients: 32, Pipeline: 4, Keys: 1000, KeyPrefix: "bench:1:",
			Interval: time.Second, Max: 10, Duration: 10 * time.Second, Verify: true, Password: "secret"},
		Addrs: []string{"127.0.0.1:6380", "127.0.0.1:6381"}, Elapsed: 10*time.Second + 1500*time.Microsecond,
		Ops: 120000, OpsPerSec: 11998.2, GrantedNow: 1000, Reserved: 9000, Denied: 109999, Errors: 1,
		FirstError: "CLUSTERDOWN no leader", RoundTrips: 30000,
		Latency: Latency{P50: 2500 * time.Microsecond, P90: 4 * time.Millisecond, P99: 7250 * time.Microsecond,
			P999: 12 * time.Millisecond, Max: 30 * time.Millisecond},
		Spacing: Spacing{Checked: true, Pass: true, Grants: 10000, Keys: 1000, MinGap: 1000},
	}
	want := `{
  "target": "throttledb",
  "addrs": ["127.0.0.1:6380", "127.0.0.1:6381"],
  "embedded": false,
  "config": {"clients": 32, "pipeline": 4, "keys": 1000, "key_prefix": "bench:1:", "interval_ms": 1000,
             "max": 10, "duration_ms": 10000, "verify": true, "tls": false},
  "elapsed_ms": 10001.5,
  "ops": 120000, "ops_per_sec": 11998.2,
  "granted_now": 1000, "reserved": 9000, "denied": 109999, "errors": 1,
  "first_error": "CLUSTERDOWN no leader",
  "round_trips": 30000,
  "latency_ms": {"p50": 2.5, "p90": 4, "p99": 7.25, "p99_9": 12, "max": 30},
  "spacing": {"pass": true, "grants": 10000, "keys": 1000, "min_gap_ms": 1000, "too_close": 0, "shared": 0, "first": ""}
}`
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(want)); err != nil {
		t.Fatal(err)
	}
	if string(got) != compact.String() {
		t.Fatalf("JSON\n%s\nwant\n%s", got, compact.String())
	}
	if strings.Contains(string(got), "secret") {
		t.Fatal("the password is in the JSON")
	}
	// Without --verify, spacing is null; with no addresses, addrs is [].
	got, _ = json.Marshal(Result{Config: Config{Target: TargetRedisLua}})
	for _, s := range []string{`"spacing":null`, `"addrs":[]`, `"target":"redis-lua"`} {
		if !strings.Contains(string(got), s) {
			t.Errorf("JSON %s lacks %s", got, s)
		}
	}
}
