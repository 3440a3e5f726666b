package resp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestAppendCommand(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no args", nil, "*0\r\n"},
		{"ping", []string{"PING"}, "*1\r\n$4\r\nPING\r\n"},
		{"set", []string{"SET", "k", "v"}, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"},
		{"empty arg", []string{"ECHO", ""}, "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"},
		{"binary arg", []string{"ECHO", "a\r\nb\x00"}, "*2\r\n$4\r\nECHO\r\n$5\r\na\r\nb\x00\r\n"},
		{"raft join", []string{"RAFT.JOIN", "node2", "10.0.0.2:7000"},
			"*3\r\n$9\r\nRAFT.JOIN\r\n$5\r\nnode2\r\n$13\r\n10.0.0.2:7000\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var byteArgs [][]byte
			for _, a := range tc.args {
				byteArgs = append(byteArgs, []byte(a))
			}
			prefix := []byte("prefix")
			got := AppendCommand(bytes.Clone(prefix), byteArgs...)
			if string(got) != "prefix"+tc.want {
				t.Fatalf("AppendCommand = %q, want %q", got, "prefix"+tc.want)
			}
			if got := AppendCommandStrings(nil, tc.args...); string(got) != tc.want {
				t.Fatalf("AppendCommandStrings = %q, want %q", got, tc.want)
			}

			// Round trip: the encoded command is itself one RESP reply.
			enc := AppendCommand(nil, byteArgs...)
			raw, err := ReadReply(bufio.NewReader(bytes.NewReader(enc)))
			if err != nil {
				t.Fatalf("ReadReply: %v", err)
			}
			if !bytes.Equal(raw, enc) {
				t.Fatalf("round trip = %q, want %q", raw, enc)
			}
			dec, err := parseCommand(raw)
			if err != nil || !slices.Equal(dec, append([]string{}, tc.args...)) {
				t.Fatalf("decoded %q, %v; want %q", dec, err, tc.args)
			}
		})
	}
}

// parseCommand decodes a raw RESP array of bulk strings, as validated by
// ReadReply, into its arguments.
func parseCommand(raw []byte) ([]string, error) {
	r := bufio.NewReader(bytes.NewReader(raw))
	header := func(typ byte) (int, error) {
		s, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		s = strings.TrimSuffix(s, "\r\n")
		if len(s) == 0 || s[0] != typ {
			return 0, fmt.Errorf("want %q header, got %q", typ, s)
		}
		return strconv.Atoi(s[1:])
	}
	n, err := header('*')
	if err != nil {
		return nil, err
	}
	args := []string{}
	for range n {
		size, err := header('$')
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args = append(args, string(buf[:size]))
	}
	return args, nil
}
