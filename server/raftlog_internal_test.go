package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestRaftLoggerLevelsAndFields checks the hclog-to-slog mapping: each
// hclog level lands at its slog level or is filtered by the handler's, and
// names and implied arguments become attributes.
func TestRaftLoggerLevelsAndFields(t *testing.T) {
	tests := []struct {
		level     hclog.Level
		handler   slog.Level
		wantLevel string // "" when the record must be filtered
	}{
		{hclog.Trace, slog.LevelDebug, ""},
		{hclog.Trace, slog.LevelDebug - 4, "DEBUG-4"},
		{hclog.Debug, slog.LevelInfo, ""},
		{hclog.Debug, slog.LevelDebug, "DEBUG"},
		{hclog.Info, slog.LevelInfo, "INFO"},
		{hclog.Warn, slog.LevelError, ""},
		{hclog.Warn, slog.LevelInfo, "WARN"},
		{hclog.Error, slog.LevelError, "ERROR"},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		lg := raftLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.handler})))
		lg.Named("net").With("peer", "n2").Log(tt.level, "hello", "term", 3,
			"servers", hclog.Fmt("%+v", []int{1, 2}), "addr", stringer("10.0.0.1:1"))
		if tt.wantLevel == "" {
			if buf.Len() != 0 {
				t.Fatalf("%v at handler level %v: logged %s", tt.level, tt.handler, buf.String())
			}
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("%v: %v: %s", tt.level, err, buf.String())
		}
		want := map[string]any{"level": tt.wantLevel, "msg": "hello", "component": "raft.net", "peer": "n2", "term": 3.0,
			"servers": "[1 2]", "addr": "10.0.0.1:1"}
		for k, v := range want {
			if rec[k] != v {
				t.Fatalf("%v: %s = %v, want %v (record %v)", tt.level, k, rec[k], v, rec)
			}
		}
	}
	lg := raftLogger(slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if lg.IsInfo() || !lg.IsWarn() || lg.GetLevel() != hclog.Warn {
		t.Fatalf("IsInfo %v IsWarn %v GetLevel %v with a warn handler", lg.IsInfo(), lg.IsWarn(), lg.GetLevel())
	}
}

// stringer stands for Raft's values whose meaning is their String method.
type stringer string

func (s stringer) String() string { return string(s) }
