package main

import "testing"

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1024", 1024, true},
		{"1k", 1000, true},
		{"1kb", 1024, true},
		{"512mb", 512 << 20, true},
		{"512MB", 512 << 20, true},
		{"1gb", 1 << 30, true},
		{"2g", 2e9, true},
		{"10b", 10, true},
		{"", 0, false},
		{"mb", 0, false},
		{"-1", 0, false},
		{"1.5mb", 0, false},
		{"1tb", 0, false},
		{"9223372036854775807gb", 0, false},
	}
	for _, tc := range tests {
		got, err := parseMemory(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseMemory(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestYesNoFlag(t *testing.T) {
	var b bool
	f := yesNoFlag{&b}
	for _, tc := range []struct {
		in   string
		want bool
		ok   bool
	}{{"yes", true, true}, {"NO", false, true}, {"Yes", true, true}, {"true", true, false}, {"", true, false}} {
		err := f.Set(tc.in)
		if (err == nil) != tc.ok || b != tc.want {
			t.Errorf("Set(%q): %v, %v", tc.in, b, err)
		}
	}
}
