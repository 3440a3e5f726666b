package main

import (
	"fmt"
	"io"
	"log/slog"
)

// newLogger returns the node's logger writing to w at level ("debug",
// "info", "warn", "error") in format: "text" (slog's key=value lines) or
// "json" (one JSON object per line, for log collectors). Raft's own lines
// go through the same logger (server/raftlog.go).
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}
