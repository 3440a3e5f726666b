package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// shortRun is a run small enough for a test. Its keys run out of slots
// whatever the machine's speed: with an interval of an hour and max 3, each
// of the 2 keys grants one call now, reserves the next 3 and denies every
// later one, so any run of 9 calls or more has every kind of reply. (With
// a short interval the mix depended on how many calls a loaded machine
// made per interval.)
func shortRun(addrs []string, target Target, pipeline int) Config {
	return Config{
		Addrs:    addrs,
		Target:   target,
		Clients:  8,
		Duration: 400 * time.Millisecond,
		Keys:     2,
		Interval: time.Hour,
		Max:      3,
		Pipeline: pipeline,
		Verify:   true,
	}
}

// checkResult checks what holds for every healthy run.
func checkResult(t *testing.T, res Result, out string) {
	t.Helper()
	if res.Ops == 0 {
		t.Fatalf("no ops:\n%s", out)
	}
	if sum := res.GrantedNow + res.Reserved + res.Denied + res.Errors; sum != res.Ops {
		t.Errorf("granted now %d + reserved %d + denied %d + errors %d = %d, not ops %d",
			res.GrantedNow, res.Reserved, res.Denied, res.Errors, sum, res.Ops)
	}
	if res.Errors != 0 {
		t.Errorf("%d errors, first: %s", res.Errors, res.FirstError)
	}
	if res.GrantedNow == 0 || res.Reserved == 0 || res.Denied == 0 {
		t.Errorf("want every kind of reply, got %d now, %d reserved, %d denied", res.GrantedNow, res.Reserved, res.Denied)
	}
	if want := res.Ops / int64(res.Config.Pipeline); res.RoundTrips != want {
		t.Errorf("round trips %d, want ops/pipeline = %d", res.RoundTrips, want)
	}
	if !res.Spacing.Checked || !res.Spacing.Pass {
		t.Errorf("spacing %+v", res.Spacing)
	}
	if g := res.GrantedNow + res.Reserved; int64(res.Spacing.Grants) != g {
		t.Errorf("spacing checked %d grants, want %d", res.Spacing.Grants, g)
	}
	l := res.Latency
	ps := []time.Duration{l.P50, l.P90, l.P99, l.P999, l.Max}
	for i := 1; i < len(ps); i++ {
		if ps[i] < ps[i-1] {
			t.Errorf("percentiles decrease: %v", ps)
		}
	}
	if l.P50 <= 0 {
		t.Errorf("p50 %v", l.P50)
	}
	if !strings.Contains(out, "spacing: PASS") {
		t.Errorf("report lacks 'spacing: PASS':\n%s", out)
	}
}

func TestRunThrottleDB(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	for _, pipeline := range []int{1, 4} {
		t.Run(fmt.Sprintf("pipeline%d", pipeline), func(t *testing.T) {
			var out bytes.Buffer
			res, err := Run(context.Background(), shortRun([]string{n.Addr()}, TargetThrottleDB, pipeline), &out)
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			checkResult(t, res, out.String())
		})
	}
}

func TestRunUnreachable(t *testing.T) {
	n := testcluster.StartNode(t, testcluster.Options{})
	addr := n.Addr()
	n.Stop()
	cfg := shortRun([]string{addr}, TargetThrottleDB, 1)
	if _, err := Run(context.Background(), cfg, &bytes.Buffer{}); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Run against a stopped node: %v, want ErrUnreachable", err)
	}
}

func TestConfigValidate(t *testing.T) {
	addrs := []string{"127.0.0.1:6380"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // in the error; "" for valid
	}{
		{"defaults", Config{}, ""},
		{"redis-lua", Config{Target: TargetRedisLua, Addrs: addrs}, ""},
		{"max 0", Config{Max: 0, Addrs: addrs}, ""},
		{"unknown target", Config{Target: "memcached"}, "target must be"},
		{"redis-lua without address", Config{Target: TargetRedisLua}, "needs the address"},
		{"password without address", Config{Password: "p"}, "password needs addresses"},
		{"negative clients", Config{Clients: -1}, "clients"},
		{"negative duration", Config{Duration: -time.Second}, "duration"},
		{"negative keys", Config{Keys: -1}, "keys"},
		{"too many keys", Config{Keys: maxKeys + 1}, "keys"},
		{"negative interval", Config{Interval: -time.Millisecond}, "interval"},
		{"fractional interval", Config{Interval: 1500 * time.Microsecond}, "interval"},
		{"negative max", Config{Max: -1}, "max"},
		{"negative pipeline", Config{Pipeline: -2}, "pipeline"},
		{"empty address", Config{Addrs: []string{"127.0.0.1:6380", ""}}, "address is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults(time.Now()).validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate: %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
			// Run refuses it before starting anything.
			if _, err := Run(context.Background(), tc.cfg, &bytes.Buffer{}); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Run: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	start := time.UnixMilli(1795748532690)
	c := Config{}.withDefaults(start)
	want := Config{Target: TargetThrottleDB, Clients: 32, Duration: 10 * time.Second, Keys: 1000,
		Interval: time.Second, Pipeline: 1, KeyPrefix: "bench:1795748532690:"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
}
