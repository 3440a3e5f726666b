package bench

import (
	"encoding/json"
	"time"
)

// jsonResult is the shape of a Result in JSON (`throttledb bench --json`):
// durations in milliseconds (fractions kept), names in snake_case. Fields
// are only ever added.
type jsonResult struct {
	Target     Target       `json:"target"`
	Addrs      []string     `json:"addrs"`
	Embedded   bool         `json:"embedded"`
	Config     jsonConfig   `json:"config"`
	ElapsedMs  float64      `json:"elapsed_ms"`
	Ops        int64        `json:"ops"`
	OpsPerSec  float64      `json:"ops_per_sec"`
	GrantedNow int64        `json:"granted_now"`
	Reserved   int64        `json:"reserved"`
	Denied     int64        `json:"denied"`
	Errors     int64        `json:"errors"`
	FirstError string       `json:"first_error"`
	RoundTrips int64        `json:"round_trips"`
	LatencyMs  jsonLatency  `json:"latency_ms"`
	Spacing    *jsonSpacing `json:"spacing"` // null unless Config.Verify
}

type jsonConfig struct {
	Clients    int     `json:"clients"`
	Pipeline   int     `json:"pipeline"`
	Keys       int     `json:"keys"`
	KeyPrefix  string  `json:"key_prefix"`
	IntervalMs int64   `json:"interval_ms"`
	Max        int     `json:"max"`
	DurationMs float64 `json:"duration_ms"`
	Verify     bool    `json:"verify"`
	TLS        bool    `json:"tls"`
}

type jsonLatency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

type jsonSpacing struct {
	Pass     bool   `json:"pass"`
	Grants   int    `json:"grants"`
	Keys     int    `json:"keys"`
	MinGapMs int64  `json:"min_gap_ms"`
	TooClose int    `json:"too_close"`
	Shared   int    `json:"shared"`
	First    string `json:"first"`
}

// MarshalJSON writes the result in the documented JSON shape (README,
// `throttledb bench --json`). The password is never included.
func (r Result) MarshalJSON() ([]byte, error) {
	msf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	c := r.Config
	j := jsonResult{
		Target:     c.Target,
		Addrs:      r.Addrs,
		Embedded:   r.Embedded,
		ElapsedMs:  msf(r.Elapsed),
		Ops:        r.Ops,
		OpsPerSec:  r.OpsPerSec,
		GrantedNow: r.GrantedNow,
		Reserved:   r.Reserved,
		Denied:     r.Denied,
		Errors:     r.Errors,
		FirstError: r.FirstError,
		RoundTrips: r.RoundTrips,
		Config: jsonConfig{Clients: c.Clients, Pipeline: c.Pipeline, Keys: c.Keys, KeyPrefix: c.KeyPrefix,
			IntervalMs: c.Interval.Milliseconds(), Max: c.Max, DurationMs: msf(c.Duration), Verify: c.Verify,
			TLS: c.TLSConfig != nil},
		LatencyMs: jsonLatency{P50: msf(r.Latency.P50), P90: msf(r.Latency.P90), P99: msf(r.Latency.P99),
			P999: msf(r.Latency.P999), Max: msf(r.Latency.Max)},
	}
	if j.Addrs == nil {
		j.Addrs = []string{}
	}
	if s := r.Spacing; s.Checked {
		j.Spacing = &jsonSpacing{Pass: s.Pass, Grants: s.Grants, Keys: s.Keys, MinGapMs: s.MinGap,
			TooClose: s.TooClose, Shared: s.Shared, First: s.First}
	}
	return json.Marshal(j)
}
