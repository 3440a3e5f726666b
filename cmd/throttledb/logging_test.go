package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level, format string
		wantErr       string
		json          bool
	}{
		{"info", "text", "", false},
		{"debug", "json", "", true},
		{"loud", "text", "--log-level", false},
		{"info", "xml", "--log-format", false},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		lg, err := newLogger(&buf, tt.level, tt.format)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("%s/%s: err %v, want one naming %s", tt.level, tt.format, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s/%s: %v", tt.level, tt.format, err)
		}
		lg.Info("started", "id", "n1")
		var rec map[string]any
		isJSON := json.Unmarshal(buf.Bytes(), &rec) == nil
		if isJSON != tt.json || !strings.Contains(buf.String(), "n1") {
			t.Fatalf("%s/%s: wrote %q", tt.level, tt.format, buf.String())
		}
	}
}
