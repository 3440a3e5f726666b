package server

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseShutdown(t *testing.T) {
	tests := []struct {
		args string // space-separated, after SHUTDOWN
		want shutdownOpts
		err  error
	}{
		{args: "", want: shutdownOpts{}},
		{args: "NOSAVE", want: shutdownOpts{nosave: true}},
		{args: "save", want: shutdownOpts{save: true}},
		{args: "Now", want: shutdownOpts{now: true}},
		{args: "FORCE", want: shutdownOpts{force: true}},
		{args: "ABORT", want: shutdownOpts{abort: true}},
		{args: "abort ABORT", want: shutdownOpts{abort: true}},
		{args: "SAVE NOW FORCE", want: shutdownOpts{save: true, now: true, force: true}},
		{args: "force now nosave", want: shutdownOpts{nosave: true, now: true, force: true}},
		{args: "save save now now force force", want: shutdownOpts{save: true, now: true, force: true}},
		{args: "nosave nosave", want: shutdownOpts{nosave: true}},
		// Redis's syntax errors: an unknown word anywhere, SAVE with
		// NOSAVE, ABORT with anything else.
		{args: "SAFE", err: errSyntax},
		{args: "save x", err: errSyntax},
		{args: "now nowait", err: errSyntax},
		{args: "SAVE NOSAVE", err: errSyntax},
		{args: "nosave now save", err: errSyntax},
		{args: "ABORT NOW", err: errSyntax},
		{args: "force abort", err: errSyntax},
		{args: "abort save", err: errSyntax},
		{args: "abort nosave", err: errSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			args := [][]byte{[]byte("SHUTDOWN")}
			for _, w := range strings.Fields(tt.args) {
				args = append(args, []byte(w))
			}
			if row := lookupCommand(args[0]); row == nil || !arityOK(row.arity, len(args)) {
				t.Fatalf("SHUTDOWN with %d arguments refused by the table", len(args)-1)
			}
			got, err := parseShutdown(args)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("options %+v, want %+v", got, tt.want)
			}
			if tt.err != nil && errorText(err) != "ERR syntax error" {
				t.Fatalf("reply %q, want Redis's syntax error", errorText(err))
			}
		})
	}
}

func TestShutdownErrorText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errNoShutdown, "ERR No shutdown in progress."},
		{errShutdownFailedFor(errShutdownAborted), "ERR Errors trying to SHUTDOWN. Check logs."},
		{errShutdownFailedFor(errSnapshotFailed), "ERR Errors trying to SHUTDOWN. Check logs."},
	}
	for _, tt := range tests {
		if got := errorText(tt.err); got != tt.want {
			t.Errorf("errorText(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// FuzzParseShutdown checks that whatever arrives, parseShutdown either
// refuses it with the syntax error or accepts only Redis's grammar: known
// words, no SAVE with NOSAVE, ABORT alone.
func FuzzParseShutdown(f *testing.F) {
	for _, seed := range []string{"", "save", "NOSAVE NOW FORCE", "abort", "abort now", "save nosave",
		"s\x00ave", "SAVE\r\nNOW", "ſave", "ABORT\tNOW", "NOW NOW NOW NOW", "\xff\xfe", strings.Repeat("force ", 1000)} {
		f.Add(seed)
	}
	known := map[string]bool{"save": true, "nosave": true, "now": true, "force": true, "abort": true}
	f.Fuzz(func(t *testing.T, in string) {
		args := [][]byte{[]byte("shutdown")}
		for _, w := range bytes.Split([]byte(in), []byte(" ")) {
			args = append(args, w)
		}
		o, err := parseShutdown(args)
		if err != nil {
			if err != errSyntax {
				t.Fatalf("error %v, want the syntax error", err)
			}
			return
		}
		for _, a := range args[1:] {
			if !known[strings.ToLower(string(a))] {
				t.Fatalf("accepted %q", a)
			}
		}
		if o.save && o.nosave || o.abort && (o.save || o.nosave || o.now || o.force) {
			t.Fatalf("accepted %q as %+v", in, o)
		}
	})
}

// errShutdownFailedFor wraps cause as requestStop does.
func errShutdownFailedFor(cause error) error {
	return fmt.Errorf("%w: %w", errShutdownFailed, cause)
}
