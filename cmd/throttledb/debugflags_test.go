package main

import (
	"bytes"
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestParsePeerAddrs(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
		bad  bool
	}{
		{in: "", want: map[string]string{}},
		{in: "n2=127.0.0.1:7001", want: map[string]string{"n2": "127.0.0.1:7001"}},
		{in: "n2=127.0.0.1:7001, n3=[::1]:7002", want: map[string]string{"n2": "127.0.0.1:7001", "n3": "[::1]:7002"}},
		{in: "n2", bad: true},
		{in: "=127.0.0.1:1", bad: true},
		{in: "n2=nohost", bad: true},
		{in: "n2=a:1,n2=b:2", bad: true},
		{in: "n2=a:1,", bad: true},
	}
	for _, tt := range tests {
		got, err := parsePeerAddrs(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("%q: accepted as %v", tt.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestDebugFlagsHidden: -h does not list the test-only flags, but they parse.
func TestDebugFlagsHidden(t *testing.T) {
	fs := flag.NewFlagSet("throttledb", flag.ContinueOnError)
	var m map[string]string
	fs.String("addr", "", "RESP listen address")
	fs.Var(peerAddrsFlag{&m}, "debug-peer-raft-addrs", "test only")
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage = usageWithoutDebug(fs)
	fs.Usage()
	if !strings.Contains(out.String(), "-addr") || strings.Contains(out.String(), "debug") {
		t.Fatalf("usage:\n%s", out.String())
	}
	if err := fs.Parse([]string{"--debug-peer-raft-addrs", "n2=127.0.0.1:9"}); err != nil || m["n2"] != "127.0.0.1:9" {
		t.Fatalf("parse: %v %v", err, m)
	}
}

func FuzzParsePeerAddrs(f *testing.F) {
	for _, s := range []string{"", "n2=127.0.0.1:7001", "a=b:1,c=d:2", "==", ",,,", "n=[::1", "n=:0", "x=y:1,x=y:1", "\x00=\xff:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parsePeerAddrs(s)
		if err != nil {
			return
		}
		// What parses round-trips through the flag's String.
		again, err := parsePeerAddrs(peerAddrsFlag{&m}.String())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("%q parsed as %v, re-parsed as %v, %v", s, m, again, err)
		}
	})
}
