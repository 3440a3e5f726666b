package resp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func read(s string) ([]byte, error) {
	return ReadReply(bufio.NewReader(strings.NewReader(s)))
}

func nested(depth int, leaf string) string {
	return strings.Repeat("*1\r\n", depth) + leaf
}

func TestReadReplyValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"simple string", "+OK\r\n"},
		{"empty simple string", "+\r\n"},
		{"simple error", "-ERR unknown command 'FOO'\r\n"},
		{"integer", ":1000\r\n"},
		{"negative integer", ":-42\r\n"},
		{"bulk", "$5\r\nhello\r\n"},
		{"empty bulk", "$0\r\n\r\n"},
		{"binary bulk", "$4\r\n\r\n\x00\n\r\n"},
		{"null bulk", "$-1\r\n"},
		{"array", "*2\r\n$3\r\nfoo\r\n:7\r\n"},
		{"empty array", "*0\r\n"},
		{"null array", "*-1\r\n"},
		{"nested arrays", "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*0\r\n"},
		{"array with nulls", "*3\r\n$-1\r\n*-1\r\n_\r\n"},
		{"resp3 null", "_\r\n"},
		{"double", ",3.14\r\n"},
		{"double exponent", ",1.5e10\r\n"},
		{"double inf", ",inf\r\n"},
		{"double -inf", ",-inf\r\n"},
		{"double nan", ",nan\r\n"},
		{"boolean true", "#t\r\n"},
		{"boolean false", "#f\r\n"},
		{"big number", "(3492890328409238509324850943850943825024385\r\n"},
		{"negative big number", "(-12345678901234567890\r\n"},
		{"verbatim", "=15\r\ntxt:Some string\r\n"},
		{"blob error", "!21\r\nSYNTAX invalid syntax\r\n"},
		{"map", "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"},
		{"set", "~3\r\n+a\r\n+b\r\n+c\r\n"},
		{"push", ">2\r\n+message\r\n+hello\r\n"},
		{"attribute then reply", "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n*2\r\n:2039123\r\n:9543892\r\n"},
		{"attribute inside array", "*2\r\n|1\r\n+ttl\r\n:3600\r\n+v\r\n:2\r\n"},
		{"max depth", nested(MaxDepth, ":1\r\n")},
		{"line with lone CR", "+a\rb\r\n"},
		{"long line", "+" + strings.Repeat("x", MaxLineLen) + "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Trailing data must be left unread.
			r := bufio.NewReader(strings.NewReader(tc.in + "+NEXT\r\n"))
			got, err := ReadReply(r)
			if err != nil {
				t.Fatalf("ReadReply(%q) error: %v", clip([]byte(tc.in)), err)
			}
			if string(got) != tc.in {
				t.Fatalf("ReadReply = %q, want %q", got, tc.in)
			}
			next, err := ReadReply(r)
			if err != nil || string(next) != "+NEXT\r\n" {
				t.Fatalf("following reply = %q, %v", next, err)
			}
		})
	}
}

func TestReadReplySmallBuffer(t *testing.T) {
	// Lines and payloads longer than the bufio buffer.
	long := strings.Repeat("y", 1000)
	in := "*3\r\n+" + long + "\r\n$1000\r\n" + long + "\r\n-" + long + "\r\n"
	got, err := ReadReply(bufio.NewReaderSize(strings.NewReader(in), 16))
	if err != nil || string(got) != in {
		t.Fatalf("ReadReply = %d bytes, %v", len(got), err)
	}
}

func TestReadReplyLargeBulk(t *testing.T) {
	payload := bytes.Repeat([]byte("z"), 3*bulkChunk+17)
	in := append([]byte("$"+strconv.Itoa(len(payload))+"\r\n"), payload...)
	in = append(in, "\r\n"...)
	got, err := ReadReply(bufio.NewReader(bytes.NewReader(in)))
	if err != nil || !bytes.Equal(got, in) {
		t.Fatalf("ReadReply = %d bytes, %v", len(got), err)
	}
}

func TestReadReplyEOF(t *testing.T) {
	if _, err := read(""); err != io.EOF {
		t.Fatalf("empty input: err = %v, want io.EOF", err)
	}
	partial := []struct {
		name string
		in   string
	}{
		{"type byte only", "+"},
		{"line without LF", "+OK\r"},
		{"line without CRLF", "+OK"},
		{"bulk header only", "$5\r\n"},
		{"bulk short payload", "$5\r\nhel"},
		{"bulk missing CRLF", "$5\r\nhello"},
		{"bulk missing LF", "$5\r\nhello\r"},
		{"array missing elements", "*3\r\n:1\r\n:2\r\n"},
		{"nested missing elements", "*2\r\n*2\r\n:1\r\n"},
		{"map missing value", "%1\r\n+k\r\n"},
		{"attribute without reply", "|1\r\n+k\r\n+v\r\n"},
	}
	for _, tc := range partial {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(tc.in)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadReply(%q) = %q, %v; want io.ErrUnexpectedEOF", tc.in, got, err)
			}
			if got != nil {
				t.Fatalf("ReadReply returned bytes %q on error", got)
			}
		})
	}
}

func TestReadReplyMalformed(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"unknown type", "?x\r\n"},
		{"inline command", "PING\r\n"},
		{"empty line", "\r\n"},
		{"LF only", "+OK\n"},
		{"bad bulk length", "$abc\r\nabc\r\n"},
		{"empty bulk length", "$\r\n\r\n"},
		{"plus-signed length", "$+3\r\nabc\r\n"},
		{"negative bulk length", "$-2\r\n"},
		{"negative array length", "*-5\r\n"},
		{"null blob error", "!-1\r\n"},
		{"null set", "~-1\r\n"},
		{"null map", "%-1\r\n"},
		{"overflowing length", "$99999999999999999999999\r\n"},
		{"bulk too long", "$" + strconv.Itoa(MaxBulkLen+1) + "\r\n"},
		{"array too long", "*" + strconv.Itoa(MaxAggregateLen+1) + "\r\n"},
		{"map too long", "%" + strconv.Itoa(MaxAggregateLen/2+1) + "\r\n"},
		{"bulk missing CRLF", "$3\r\nabcXY"},
		{"bulk wrong terminator", "$3\r\nabc\n\r"},
		{"streamed bulk", "$?\r\n;4\r\nHell\r\n;0\r\n"},
		{"streamed array", "*?\r\n:1\r\n.\r\n"},
		{"bad integer", ":12a\r\n"},
		{"empty integer", ":\r\n"},
		{"integer overflow", ":99999999999999999999\r\n"},
		{"bad null", "_x\r\n"},
		{"bad boolean", "#x\r\n"},
		{"long boolean", "#tt\r\n"},
		{"bad double", ",abc\r\n"},
		{"empty double", ",\r\n"},
		{"bad big number", "(12x\r\n"},
		{"empty big number", "(\r\n"},
		{"verbatim without format", "=3\r\nabc\r\n"},
		{"verbatim bad separator", "=5\r\ntxtxy\r\n"},
		{"too deep", nested(MaxDepth+1, ":1\r\n")},
		{"too deep maps", strings.Repeat("%1\r\n+k\r\n", MaxDepth+1) + ":1\r\n"},
		{"attribute chain too deep", strings.Repeat("|0\r\n", MaxDepth+1) + ":1\r\n"},
		{"line too long", "+" + strings.Repeat("x", MaxLineLen+1) + "\r\n"},
		{"line too long no LF", "-" + strings.Repeat("x", 2*MaxLineLen)},
		{"bad element", "*2\r\n:1\r\n?\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(tc.in)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("ReadReply(%q) = %q, %v; want ErrProtocol", clip([]byte(tc.in)), got, err)
			}
			if got != nil {
				t.Fatalf("ReadReply returned bytes %q on error", got)
			}
		})
	}
}

func TestReadReplyReaderError(t *testing.T) {
	boom := errors.New("boom")
	r := bufio.NewReader(io.MultiReader(strings.NewReader("$10\r\nabc"), errReader{boom}))
	if _, err := ReadReply(r); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestIsErrorAndErrorText(t *testing.T) {
	tests := []struct {
		raw   string
		isErr bool
		text  string
	}{
		{"-ERR boom\r\n", true, "ERR boom"},
		{"-WRONGPASS invalid username-password pair or user is disabled.\r\n", true,
			"WRONGPASS invalid username-password pair or user is disabled."},
		{"-\r\n", true, ""},
		{"!21\r\nSYNTAX invalid syntax\r\n", true, "SYNTAX invalid syntax"},
		{"!4\r\na\r\nb\r\n", true, "a\r\nb"},
		{"!x\r\nbad\r\n", true, "bad"},
		{"+OK\r\n", false, ""},
		{"$3\r\nERR\r\n", false, ""},
		{"", false, ""},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.raw), func(t *testing.T) {
			if got := IsError([]byte(tc.raw)); got != tc.isErr {
				t.Errorf("IsError = %v, want %v", got, tc.isErr)
			}
			if got := ErrorText([]byte(tc.raw)); got != tc.text {
				t.Errorf("ErrorText = %q, want %q", got, tc.text)
			}
		})
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR x\r\n", ":1\r\n", "$3\r\nfoo\r\n", "$-1\r\n", "*-1\r\n",
		"*2\r\n$1\r\na\r\n*1\r\n:2\r\n", "_\r\n", ",1.5\r\n", "#t\r\n", "(123\r\n",
		"=7\r\ntxt:abc\r\n", "!3\r\nerr\r\n", "%1\r\n+k\r\n+v\r\n", "~1\r\n+a\r\n",
		">1\r\n+p\r\n", "|1\r\n+a\r\n+b\r\n:1\r\n", "$5\r\nab", "*3\r\n:1\r\n",
		"$-2\r\n", nested(MaxDepth+1, ":1\r\n"), "+a\r\n+b\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, size := range []int{16, 4096} {
			got, err := ReadReply(bufio.NewReaderSize(bytes.NewReader(in), size))
			if err != nil {
				if got != nil {
					t.Fatalf("bytes returned with error %v", err)
				}
				continue
			}
			if !bytes.HasPrefix(in, got) {
				t.Fatalf("reply %q is not a prefix of input %q", got, in)
			}
			again, err := ReadReply(bufio.NewReaderSize(bytes.NewReader(got), size))
			if err != nil || !bytes.Equal(again, got) {
				t.Fatalf("re-read of %q = %q, %v", got, again, err)
			}
		}
	})
}
