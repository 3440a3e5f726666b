package main

import "testing"

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
