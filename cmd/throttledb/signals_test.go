package main

import (
	"io"
	"log/slog"
	"os"
	"syscall"
	"testing"
)

func TestWatchSignalsWhileStopping(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sigs     []os.Signal
		wantExit int // -1: none
	}{
		{"second SIGINT exits 1", []os.Signal{os.Interrupt}, 1},
		{"SIGTERM carries on", []os.Signal{syscall.SIGTERM}, -1},
		{"SIGTERM, then SIGINT exits 1", []os.Signal{syscall.SIGTERM, syscall.SIGTERM, os.Interrupt}, 1},
		{"nothing", nil, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigs := make(chan os.Signal, len(tc.sigs))
			for _, s := range tc.sigs {
				sigs <- s
			}
			close(sigs)
			got := -1
			watchSignalsWhileStopping(sigs, slog.New(slog.NewTextHandler(io.Discard, nil)), func(code int) { got = code })
			if got != tc.wantExit {
				t.Fatalf("exit code %d, want %d", got, tc.wantExit)
			}
		})
	}
}
