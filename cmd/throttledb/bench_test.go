package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchJSON runs `throttledb bench` (an embedded node) with --json to a
// file and to stdout: the JSON is the whole of stdout with "-" (the report
// moves to stderr), and it holds the run's figures.
func TestBenchJSON(t *testing.T) {
	bin := binary(t)
	load := []string{"bench", "--duration", "300ms", "--clients", "2", "--keys", "2", "--interval", "3600000", "--max", "3", "--verify"}
	file := filepath.Join(t.TempDir(), "result.json")
	for _, tc := range []struct {
		name string
		dest string
	}{
		{"file", file},
		{"stdout", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, append(load, "--json", tc.dest)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
			}
			data, report := stdout.Bytes(), stdout.String()
			if tc.dest != "-" {
				var err error
				if data, err = os.ReadFile(file); err != nil {
					t.Fatal(err)
				}
			} else {
				report = stderr.String()
			}
			if !strings.Contains(report, "\nResult: throttledb") || !strings.Contains(report, "spacing: PASS") {
				t.Errorf("the report is not where it belongs:\n%s", report)
			}
			var res struct {
				Target    string  `json:"target"`
				Embedded  bool    `json:"embedded"`
				Ops       int64   `json:"ops"`
				OpsPerSec float64 `json:"ops_per_sec"`
				Config    struct {
					Clients int `json:"clients"`
				} `json:"config"`
				LatencyMs struct {
					P99 float64 `json:"p99"`
				} `json:"latency_ms"`
				Spacing *struct {
					Pass bool `json:"pass"`
				} `json:"spacing"`
			}
			if err := json.Unmarshal(data, &res); err != nil {
				t.Fatalf("not JSON (%v):\n%s", err, data)
			}
			if res.Target != "throttledb" || !res.Embedded || res.Ops == 0 || res.OpsPerSec <= 0 ||
				res.Config.Clients != 2 || res.LatencyMs.P99 <= 0 || res.Spacing == nil || !res.Spacing.Pass {
				t.Errorf("result %+v from:\n%s", res, data)
			}
		})
	}
}
