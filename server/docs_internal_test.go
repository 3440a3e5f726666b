package server

import (
	"strings"
	"testing"
)

// TestCommandDocsCoverTable holds the table and its companion docs to one
// set of names: a command added without docs (or docs left behind by a
// removed command) fails here, not silently in redis-cli.
func TestCommandDocsCoverTable(t *testing.T) {
	for name, cmd := range commands {
		doc := commandDocs[name]
		if doc == nil {
			t.Errorf("%s: in the command table but not in commandDocs", name)
			continue
		}
		if doc.summary == "" || doc.since == "" || doc.group == "" || doc.complexity == "" || len(doc.acl) == 0 {
			t.Errorf("%s: summary, since, group, complexity and ACL categories are required: %+v", name, doc)
		}
		keyArgs := 0
		for _, a := range doc.args {
			if a.typ == "key" {
				keyArgs++
			}
		}
		if hasKeys := cmd.firstKey > 0; hasKeys != (keyArgs == 1) || hasKeys != (len(doc.keyFlags) > 0) {
			t.Errorf("%s: first key %d, but %d key arguments and key flags %v", name, cmd.firstKey, keyArgs, doc.keyFlags)
		}
		for _, sub := range doc.subs {
			if !strings.HasPrefix(sub.name, name+"|") || sub.arity == 0 || sub.doc.summary == "" {
				t.Errorf("%s: bad subcommand %+v", name, sub)
			}
		}
	}
	for name := range commandDocs {
		if commands[name] == nil {
			t.Errorf("%s: in commandDocs but not in the command table", name)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		nocase     bool
		want       bool
	}{
		{"*", "", false, true},
		{"*", "maxmemory", false, true},
		{"*max*", "maxmemory", false, true},
		{"*max*", "proto-max-bulk-len", false, true},
		{"*max*", "timeout", false, false},
		{"max*", "MAXMEMORY", true, true},
		{"max*", "MAXMEMORY", false, false},
		{"?ave", "save", false, true},
		{"?ave", "ave", false, false},
		{"[sx]ave", "save", false, true},
		{"[^s]ave", "save", false, false},
		{"[a-c]x", "bx", false, true},
		{"[c-a]x", "bx", false, true},
		{`\*x`, "*x", false, true},
		{`\*x`, "ax", false, false},
		{"a*b*c", "aXXbYYc", false, true},
		{"a*b*c", "aXXbYY", false, false},
		{"save", "save ", false, false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.s, tt.nocase); got != tt.want {
			t.Errorf("globMatch(%q, %q, %v) = %v, want %v", tt.pattern, tt.s, tt.nocase, got, tt.want)
		}
	}
}
