package cluster_test

import (
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// TestMetricsFlagUnderBench runs a real node with --metrics-addr on a free
// port and `throttledb bench` against it, and checks that /metrics's
// counters moved by what bench sent and that /readyz says ready.
func TestMetricsFlagUnderBench(t *testing.T) {
	p := testcluster.StartProc(t, bin, testcluster.ProcOptions{Args: []string{"--metrics-addr", "127.0.0.1:0"}})
	var addr string
	testcluster.WaitFor(t, 10*time.Second, "the node to log its metrics address", func() bool {
		for _, line := range p.Logs() {
			if strings.Contains(line, `msg="serving metrics"`) {
				_, a, _ := strings.Cut(line, "addr=")
				addr, _, _ = strings.Cut(a, " ")
				return true
			}
		}
		return false
	})
	scrape := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	value := func(body, series string) float64 {
		t.Helper()
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("%s: %v", line, err)
				}
				return f
			}
		}
		t.Fatalf("%s not in /metrics", series)
		return 0
	}
	testcluster.WaitFor(t, 10*time.Second, "/readyz to say ready", func() bool {
		code, _ := scrape("/readyz")
		return code == http.StatusOK
	})
	_, before := scrape("/metrics")

	out, err := exec.Command(bin, "bench", "--addr", p.Addr(), "--duration", "1s", "--clients", "4").CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	_, after := scrape("/metrics")
	const ok = `throttledb_commands_total{command="throttle.acquire",outcome="ok"}`
	calls := value(after, ok) - value(before, ok)
	if calls <= 0 {
		t.Fatalf("%s did not move under bench:\n%s", ok, out)
	}
	// Every acquire is a grant, a reservation or a denial: through the log
	// or, by the leader, without it.
	decided := 0.0
	for _, s := range []string{"throttledb_throttle_grants_total", "throttledb_throttle_reservations_total", "throttledb_throttle_denials_total", "throttledb_throttle_fast_denials_total"} {
		decided += value(after, s) - value(before, s)
	}
	t.Logf("bench: %v acquires, %v decided", calls, decided)
	if decided != calls {
		t.Errorf("grants+reservations+denials moved by %v, acquires by %v", decided, calls)
	}
}
