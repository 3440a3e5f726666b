package glob

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var cases = []struct {
	pattern, s string
	want       bool
}{
	{"*", "anything", true},
	{"*", "a/b", true}, // unlike path.Match, '*' crosses '/'
	{"h?llo", "hello", true},
	{"h?llo", "hllo", false},
	{"h*llo", "hllo", true},
	{"h*llo", "heeeello", true},
	{"h[ae]llo", "hallo", true},
	{"h[ae]llo", "hillo", false},
	{"h[^e]llo", "hallo", true},
	{"h[^e]llo", "hello", false},
	{"h[a-b]llo", "hbllo", true},
	{"h[b-a]llo", "hbllo", true}, // range ends in either order
	{"h[a-b]llo", "hcllo", false},
	{"[!a]", "!", true}, // '!' is not a negation, unlike path.Match
	{"[!a]", "b", false},
	{`\*`, "*", true},
	{`\*`, "a", false},
	{`a\`, `a\`, true}, // a trailing backslash is itself
	{`[\]]`, "]", true},
	{`[\-]`, "-", true},
	{"[]", "]", false}, // an empty set matches nothing
	{"[^]", "x", true},
	{"[abc", "c", true}, // an open set takes the rest of the pattern
	{"[abc", "d", false},
	{"[", "[", false},
	{"[^", "x", true},
	{"a*b*c", "axxbyyc", true},
	{"a*b*c", "axxbyy", false},
	{"user:*", "user:42", true},
	{"user:*", "users:42", false},
	{"*a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", false},
	{"a**", "a", true},
	{"?", "", false},
	{"", "", true},
	{"", "a", false},
	{"ab", "a", false},
	{"a", "ab", false},
	{"\xff*", "\xff\x00", true},
}

func TestMatch(t *testing.T) {
	for _, c := range cases {
		if got := Match(c.pattern, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

// TestAbusivePattern checks that a pattern of many stars against a long
// string that does not match returns, and fails, quickly: the cost is
// bounded by skipLongerMatches, not exponential. (No timing is asserted:
// an exponential matcher would not finish at all.)
func TestAbusivePattern(t *testing.T) {
	p := strings.Repeat("a*", 2000) + "b"
	if Match(p, strings.Repeat("a", 5000)) {
		t.Fatal("matched")
	}
}

// TestMatchesRedis runs patterns, well formed and not, against real Redis
// (redis-server, when installed) and requires the same answers.
func TestMatchesRedis(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	sock := filepath.Join(t.TempDir(), "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	defer rdb.Close()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for rdb.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	keys := []string{"a", "b", "ab", "abc", "hello", "hallo", "hxllo", "h-llo", "]", "[", "^", "-", `\`, "*", "?",
		"x]", "a]", "user:1", "user:22:x", "a/b", "\x00", "A", "z", "aXbYc", "[a", "a\\"}
	for _, k := range keys {
		if err := rdb.Set(ctx, k, 1, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	patterns := []string{"*", "?", "??", "a*", "*b*", "[ab]", "[^ab]", "[a-c]*", "[c-a]", "h[ae]llo", "h[^e]llo",
		"[]", "[]]", "[^]", "[", "[^", "[a", "[a-", "[a-]", `[\]]`, `[\]`, `\`, `\*`, `a\`, `a\\`, "[!a]", "[-]",
		"*]", "[]a]", "[a-a]", "[--z]", "***", "a**c", "[\\", "u*:*", "user:??", "*[", "*\\", "[[]", "[^[]", "a[b-]"}
	for _, p := range patterns {
		got, err := rdb.Keys(ctx, p).Result()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, k := range got {
			want[k] = true
		}
		for _, k := range keys {
			if Match(p, k) != want[k] {
				t.Errorf("Match(%q, %q) = %v, Redis says %v", p, k, Match(p, k), want[k])
			}
		}
	}
}

func FuzzMatch(f *testing.F) {
	for _, c := range cases {
		f.Add(c.pattern, c.s)
	}
	f.Add("[^\\", "x")
	f.Add("[a-\\", "b")
	f.Add(strings.Repeat("*?", 600), strings.Repeat("x", 700))
	f.Fuzz(func(t *testing.T, pattern, s string) {
		Match(pattern, s) // must not panic
		// Every byte escaped matches the string itself, and only it.
		var esc strings.Builder
		for i := 0; i < len(s); i++ {
			esc.WriteByte('\\')
			esc.WriteByte(s[i])
		}
		if !Match(esc.String(), s) {
			t.Fatalf("escaped %q does not match itself", s)
		}
		if s != "" && !Match("*", s) {
			t.Fatalf("* does not match %q", s)
		}
	})
}
