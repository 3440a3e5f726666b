package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/throttledb/throttledb/cmd/throttledb/internal/launcher"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// writeFile writes content to a new file in dir with mode perm and returns
// its path.
func writeFile(t *testing.T, dir, name, content string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func TestResolvePassword(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good", "file-pw\nsecond line ignored\n", 0o600)
	crlf := writeFile(t, dir, "crlf", "crlf-pw\r\n", 0o600)
	noNewline := writeFile(t, dir, "nonl", "no-newline-pw", 0o600)
	spaces := writeFile(t, dir, "spaces", " spaced pw \n", 0o600)
	open := writeFile(t, dir, "open", "open-pw\n", 0o644)
	empty := writeFile(t, dir, "empty", "", 0o600)
	blankFirst := writeFile(t, dir, "blank", "\nsecond\n", 0o600)
	long := writeFile(t, dir, "long", strings.Repeat("x", maxPasswordFileLine+1), 0o600)
	longest := writeFile(t, dir, "longest", strings.Repeat("y", maxPasswordFileLine)+"\n", 0o600)
	missing := filepath.Join(dir, "missing")

	node := func(flag, file, env string) passwordSources {
		return passwordSources{flagName: "--requirepass", flag: flag, fileFlag: "--requirepass-file", file: file, env: env}
	}
	tests := []struct {
		name     string
		src      passwordSources
		want     string
		wantErr  error
		errNames []string // sources the error must name
		warn     string   // a warning must contain this ("" : no warning)
	}{
		{name: "none", src: node("", "", "")},
		{name: "flag", src: node("flag-pw", "", ""), want: "flag-pw", warn: "command line"},
		{name: "environment", src: node("", "", "env-pw"), want: "env-pw"},
		{name: "file", src: node("", good, ""), want: "file-pw"},
		{name: "file with CRLF", src: node("", crlf, ""), want: "crlf-pw"},
		{name: "file without newline", src: node("", noNewline, ""), want: "no-newline-pw"},
		{name: "spaces are kept", src: node("", spaces, ""), want: " spaced pw "},
		{name: "longest first line", src: node("", longest, ""), want: strings.Repeat("y", maxPasswordFileLine)},
		{name: "flag and environment", src: node("a", "", "b"), wantErr: errPasswordConflict, errNames: []string{"--requirepass,", envPassword}},
		{name: "flag and file", src: node("a", good, ""), wantErr: errPasswordConflict, errNames: []string{"--requirepass,", "--requirepass-file"}},
		{name: "file and environment", src: node("", good, "b"), wantErr: errPasswordConflict, errNames: []string{"--requirepass-file", envPassword}},
		{name: "all three", src: node("a", good, "b"), wantErr: errPasswordConflict, errNames: []string{"--requirepass,", "--requirepass-file", envPassword}},
		{name: "even the same password twice", src: node("same", "", "same"), wantErr: errPasswordConflict},
		{name: "missing file", src: node("", missing, ""), wantErr: errPasswordFile, errNames: []string{"--requirepass-file"}},
		{name: "empty file", src: node("", empty, ""), wantErr: errPasswordFile, errNames: []string{"empty"}},
		{name: "blank first line", src: node("", blankFirst, ""), wantErr: errPasswordFile, errNames: []string{"empty"}},
		{name: "first line too long", src: node("", long, ""), wantErr: errPasswordFile, errNames: []string{"longer than"}},
		{name: "directory", src: node("", dir, ""), wantErr: errPasswordFile},
		{name: "tool flag", src: passwordSources{flagName: "--password", flag: "tool-pw"}, want: "tool-pw", warn: envPassword},
		{name: "tool flag and environment", src: passwordSources{flagName: "--password", flag: "p", env: "q"}, wantErr: errPasswordConflict, errNames: []string{"--password,", envPassword}},
	}
	if runtime.GOOS != "windows" {
		tests = append(tests, struct {
			name     string
			src      passwordSources
			want     string
			wantErr  error
			errNames []string
			warn     string
		}{name: "group/other-readable file warns", src: node("", open, ""), want: "open-pw", warn: "mode 0644"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := tt.src.resolve()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				for _, n := range tt.errNames {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("error %q does not name %q", err, n)
					}
				}
				if got != "" {
					t.Errorf("returned password %q with an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("resolve() = %q, %v; want %q", got, err, tt.want)
			}
			joined := strings.Join(warnings, "\n")
			if (tt.warn == "") != (len(warnings) == 0) || !strings.Contains(joined, tt.warn) {
				t.Errorf("warnings %q, want one containing %q", warnings, tt.warn)
			}
			if strings.Contains(joined, got) && got != "" {
				t.Errorf("a warning shows the password: %q", joined)
			}
		})
	}
}

// TestPasswordEnvName: the launcher and the test harness give nodes their
// password in the variable the node reads.
func TestPasswordEnvName(t *testing.T) {
	if envPassword != launcher.PasswordEnv {
		t.Fatalf("node reads %s, launcher sets %s", envPassword, launcher.PasswordEnv)
	}
	if envPassword != testcluster.PasswordEnv {
		t.Fatalf("node reads %s, the test harness sets %s", envPassword, testcluster.PasswordEnv)
	}
}

func TestClientPassword(t *testing.T) {
	t.Setenv(envPassword, "env-pw")
	tests := []struct {
		flag    string
		remote  bool
		want    string
		wantErr error
	}{
		{"", true, "env-pw", nil},
		{"", false, "", nil}, // an embedded node has no password
		{"flag-pw", false, "flag-pw", nil},
		{"flag-pw", true, "", errPasswordConflict},
	}
	for _, tt := range tests {
		got, err := clientPassword(tt.flag, tt.remote)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("clientPassword(%q, %v) = %q, %v; want %q, %v", tt.flag, tt.remote, got, err, tt.want, tt.wantErr)
		}
	}
}

// FuzzPasswordLine: whatever a password file holds, the password is its
// first line exactly, without the line ending, or there is an error.
func FuzzPasswordLine(f *testing.F) {
	for _, s := range []string{"pw\n", "pw\r\n", "pw", "", "\n", "\r\n", "\r", "pw\r", "a\rb\n", "\x00\n",
		" pw \n", strings.Repeat("x", maxPasswordFileLine) + "\n", strings.Repeat("x", maxPasswordFileLine+1)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		line, err := passwordLine(data)
		if err != nil {
			return
		}
		if line == "" || len(line) > maxPasswordFileLine || strings.Contains(line, "\n") {
			t.Fatalf("passwordLine(%q) = %q", data, line)
		}
		rest := data[len(line):]
		if !bytes.HasPrefix(data, []byte(line)) || !(len(rest) == 0 || rest[0] == '\n' || bytes.HasPrefix(rest, []byte("\r\n")) || (len(rest) == 1 && rest[0] == '\r')) {
			t.Fatalf("passwordLine(%q) = %q: not the first line", data, line)
		}
	})
}
