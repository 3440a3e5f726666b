package simulate_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/cmd/throttledb/internal/simulate"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// checkSummary checks counts that hold whatever the machine's speed.
func checkSummary(t *testing.T, cfg simulate.Config, sum simulate.Summary, out string) {
	t.Helper()
	t.Logf("summary: %+v", sum)
	if !sum.Pass {
		t.Errorf("spacing FAIL: slots %v apart, interval %v", sum.MinSlotGap, sum.Interval)
	}
	if sum.Errors != 0 {
		t.Errorf("%d errors", sum.Errors)
	}
	if sum.Calls != sum.Grants+sum.Denials {
		t.Errorf("calls %d != grants %d + denials %d", sum.Calls, sum.Grants, sum.Denials)
	}
	if sum.Requests+sum.Expired+sum.Abandoned != sum.Grants {
		t.Errorf("requests %d + expired %d + abandoned %d != grants %d", sum.Requests, sum.Expired, sum.Abandoned, sum.Grants)
	}
	if sum.Requests < 2 {
		t.Errorf("only %d requests: spacing not exercised", sum.Requests)
	}
	// Slots are interval apart, acquiring stops after Duration and at most
	// Max reservations are held then: no more requests than that fit.
	if limit := int(cfg.Duration/cfg.Interval) + 1 + cfg.Max; sum.Requests > limit {
		t.Errorf("%d requests, more than %d can fit", sum.Requests, limit)
	}
	if sum.Requests > 1 && sum.MinSlotGap < cfg.Interval {
		t.Errorf("slots only %v apart", sum.MinSlotGap)
	}
	for _, want := range []string{
		fmt.Sprintf("Simulating num_workers=%d with min_interval=%v, max_permits=%d\n", cfg.Workers, cfg.Interval, cfg.Max),
		"Received permit: Permit(time_to_wait_ms=",
		"fake_request for ",
		"spacing: PASS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for w := range cfg.Workers {
		if !strings.Contains(out, fmt.Sprintf("Starting task: %d\n", w)) {
			t.Errorf("output lacks Starting task: %d", w)
		}
	}
}

func TestRunEmbedded(t *testing.T) {
	cfg := simulate.Config{Workers: 4, Interval: 200 * time.Millisecond, Max: 2, Duration: 1500 * time.Millisecond}
	var out bytes.Buffer
	sum, err := simulate.Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	checkSummary(t, cfg, sum, out.String())
	if sum.Denials == 0 {
		t.Errorf("4 workers, max 2: expected some denials")
	}
	if testing.Verbose() {
		t.Log("\n" + out.String())
	}
}

func TestRunAgainstCluster(t *testing.T) {
	cl := testcluster.Start(t, 3, testcluster.Options{})
	cfg := simulate.Config{Workers: 3, Interval: 200 * time.Millisecond, Max: 1, Duration: time.Second,
		Addrs: cl.Addrs(), Key: "sim-cluster"}
	var out bytes.Buffer
	sum, err := simulate.Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	checkSummary(t, cfg, sum, out.String())
	if !strings.Contains(out.String(), "key sim-cluster") {
		t.Errorf("output does not name the key")
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []simulate.Config{
		{Workers: -1},
		{Interval: time.Microsecond},
		{Max: -1},
		{Duration: -time.Second},
	} {
		if _, err := simulate.Run(context.Background(), cfg, &bytes.Buffer{}); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	_, err := simulate.Run(ctx, simulate.Config{Workers: 2, Interval: time.Second, Duration: time.Hour}, &out)
	if err == nil {
		t.Fatalf("no error from a cancelled run")
	}
}
