package resp

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// oneByte hands out its input one byte per Read, the worst case for an
// incremental parser.
type oneByte struct{ b []byte }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}

// readAll reads commands until an error and returns them with the error.
func readAll(r io.Reader, authed bool, limits CommandLimits) ([][]string, error) {
	rd := NewCommandReader(r, limits)
	rd.Authenticated = authed
	var out [][]string
	for {
		cmds, err := rd.ReadCommands(nil)
		for _, c := range cmds {
			var s []string
			for _, a := range c {
				s = append(s, string(a))
			}
			out = append(out, s)
		}
		if err != nil {
			return out, err
		}
	}
}

func TestCommandReader(t *testing.T) {
	huge := "9223372036854775807"
	tests := []struct {
		name    string
		in      string
		authed  bool
		want    [][]string
		errText string // "" means io.EOF at the end
		limit   bool
	}{
		{name: "multibulk", in: "*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", authed: true, want: [][]string{{"PING", "hi"}}},
		{name: "pipeline", in: "*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPING\r\n", authed: true, want: [][]string{{"PING"}, {"PING"}, {"PING"}}},
		{name: "empty bulk", in: "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", authed: true, want: [][]string{{"ECHO", ""}}},
		{name: "binary bulk", in: "*1\r\n$4\r\n\r\n\x00\n\r\n", authed: true, want: [][]string{{"\r\n\x00\n"}}},
		{name: "empty commands skipped", in: "*0\r\n*-1\r\n\r\n   \r\nPING\r\n", authed: true, want: [][]string{{"PING"}}},
		{name: "inline LF only", in: "SET a b\n", authed: true, want: [][]string{{"SET", "a", "b"}}},
		{name: "inline quotes", in: `ECHO "a b\x41\n" 'c\'d' e"f g"` + "\r\n", authed: true, want: [][]string{{"ECHO", "a bA\n", "c'd", "ef g"}}},
		{name: "inline NUL is a byte", in: "ECHO a\x00b\r\n", authed: true, want: [][]string{{"ECHO", "a\x00b"}}},
		{name: "unbalanced quotes", in: "PING\r\nECHO \"abc\r\n", authed: true, want: [][]string{{"PING"}}, errText: "Protocol error: unbalanced quotes in request"},
		{name: "closing quote then text", in: "ECHO \"a\"b\r\n", authed: true, errText: "Protocol error: unbalanced quotes in request"},
		{name: "bulk length near 2^63 (redcon overflow)", in: "*1\r\n$" + huge + "\r\n", authed: true, errText: "Protocol error: invalid bulk length"},
		{name: "bulk length overflows int64", in: "*1\r\n$99999999999999999999\r\n", authed: true, errText: "Protocol error: invalid bulk length"},
		{name: "multibulk count near 2^63 (redcon spin)", in: "*" + huge + "\r\n", authed: true, errText: "Protocol error: invalid multibulk length"},
		{name: "negative bulk", in: "*1\r\n$-1\r\n", authed: true, errText: "Protocol error: invalid bulk length"},
		{name: "bulk over proto-max-bulk-len", in: "*1\r\n$536870913\r\n", authed: true, errText: "Protocol error: invalid bulk length"},
		{name: "plus sign", in: "*+1\r\n", authed: true, errText: "Protocol error: invalid multibulk length"},
		{name: "no CR", in: "*1\n", authed: true, errText: "Protocol error: invalid multibulk length"},
		{name: "expected dollar", in: "*1\r\n:1\r\n", authed: true, errText: "Protocol error: expected '$', got ':'"},
		{name: "bad bulk terminator", in: "*1\r\n$1\r\nab\r\n", authed: true, errText: "Protocol error: invalid bulk length"},
		{name: "unauthenticated multibulk", in: "*11\r\n", errText: "Protocol error: unauthenticated multibulk length", limit: true},
		{name: "unauthenticated ten args ok", in: "*10\r\n" + strings.Repeat("$1\r\na\r\n", 10), want: [][]string{strings.Split("aaaaaaaaaa", "")}},
		{name: "unauthenticated bulk", in: "*1\r\n$16385\r\n", errText: "Protocol error: unauthenticated bulk length", limit: true},
		{name: "unauthenticated inline args", in: "a b c d e f g h i j k\r\n", errText: "Protocol error: unauthenticated multibulk length", limit: true},
		{name: "inline too big", in: strings.Repeat("a ", MaxInlineLen), authed: true, errText: "Protocol error: too big inline request", limit: true},
		{name: "mbulk count too big", in: "*" + strings.Repeat("1", MaxInlineLen+1), authed: true, errText: "Protocol error: too big mbulk count string", limit: true},
		{name: "bulk count too big", in: "*1\r\n$" + strings.Repeat("1", MaxInlineLen+1), authed: true, errText: "Protocol error: too big bulk count string", limit: true},
		{name: "truncated", in: "*2\r\n$4\r\nPING\r\n", authed: true, errText: io.ErrUnexpectedEOF.Error()},
	}
	for _, tc := range tests {
		for _, feed := range []string{"whole", "bytewise"} {
			t.Run(tc.name+"/"+feed, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tc.in)
				if feed == "bytewise" {
					r = &oneByte{[]byte(tc.in)}
				}
				got, err := readAll(r, tc.authed, CommandLimits{})
				if len(got) != len(tc.want) {
					t.Fatalf("commands: got %q, want %q", got, tc.want)
				}
				for i := range got {
					if strings.Join(got[i], "\x00") != strings.Join(tc.want[i], "\x00") {
						t.Fatalf("command %d: got %q, want %q", i, got[i], tc.want[i])
					}
				}
				if tc.errText == "" {
					if err != io.EOF {
						t.Fatalf("err = %v, want EOF", err)
					}
					return
				}
				if err == nil || err.Error() != tc.errText {
					t.Fatalf("err = %v, want %q", err, tc.errText)
				}
				if tc.errText != io.ErrUnexpectedEOF.Error() && !errors.Is(err, ErrProtocol) {
					t.Fatalf("err %v does not wrap ErrProtocol", err)
				}
				if errors.Is(err, ErrLimit) != tc.limit {
					t.Fatalf("errors.Is(err, ErrLimit) = %v, want %v", !tc.limit, tc.limit)
				}
			})
		}
	}
}

// TestCommandReaderAuthBetweenCommands: while unauthenticated the reader
// hands out one command at a time, so an AUTH lifts the limits for what
// was pipelined behind it.
func TestCommandReaderAuthBetweenCommands(t *testing.T) {
	in := "AUTH pw\r\n*11\r\n" + strings.Repeat("$1\r\na\r\n", 11)
	rd := NewCommandReader(strings.NewReader(in), CommandLimits{})
	cmds, err := rd.ReadCommands(nil)
	if err != nil || len(cmds) != 1 || string(cmds[0][0]) != "AUTH" {
		t.Fatalf("first read: %q, %v", cmds, err)
	}
	rd.Authenticated = true
	cmds, err = rd.ReadCommands(nil)
	if err != nil || len(cmds) != 1 || len(cmds[0]) != 11 {
		t.Fatalf("second read: %d commands, %v", len(cmds), err)
	}
}

// TestCommandReaderQueryBufferLimit: a client cannot buffer more than the
// limit towards an incomplete command, whether it announces a big argument
// or sends many small ones.
func TestCommandReaderQueryBufferLimit(t *testing.T) {
	limits := CommandLimits{QueryBufferLimit: 1 << 20}
	for name, in := range map[string]string{
		"announced":   "*1\r\n$2000000\r\n",
		"many args":   "*1000000\r\n" + strings.Repeat("$1\r\na\r\n", 200000),
		"slow inline": strings.Repeat("x", 2<<20),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readAll(strings.NewReader(in), true, limits)
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("err = %v, want a limit error", err)
			}
		})
	}
}

// TestCommandReaderArgsStayValid: arguments handed out are never
// overwritten by later reads.
func TestCommandReaderArgsStayValid(t *testing.T) {
	var in bytes.Buffer
	for i := 0; i < 5000; i++ {
		in.Write(AppendCommandStrings(nil, "SET", "key", strings.Repeat(string(rune('a'+i%26)), 1+i%300)))
	}
	rd := NewCommandReader(&in, CommandLimits{})
	rd.Authenticated = true
	var all [][][]byte
	for {
		cmds, err := rd.ReadCommands(nil)
		all = append(all, cmds...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(all) != 5000 {
		t.Fatalf("got %d commands", len(all))
	}
	for i, c := range all {
		if want := strings.Repeat(string(rune('a'+i%26)), 1+i%300); string(c[2]) != want {
			t.Fatalf("command %d changed: %q", i, c[2])
		}
	}
}

// TestCommandReaderBigArgumentMemory: a big argument is buffered in about
// its own size, not in a doubling of what was announced.
func TestCommandReaderBigArgumentMemory(t *testing.T) {
	const n = 8 << 20
	in := "*2\r\n$4\r\nECHO\r\n$" + "8388608" + "\r\n" + strings.Repeat("x", n) + "\r\n"
	rd := NewCommandReader(strings.NewReader(in), CommandLimits{})
	rd.Authenticated = true
	cmds, err := rd.ReadCommands(nil)
	if err != nil || len(cmds) != 1 || len(cmds[0][1]) != n {
		t.Fatalf("got %d commands, %v", len(cmds), err)
	}
	if c := cap(rd.buf); c > 3*n {
		t.Fatalf("buffer of %d bytes for an %d-byte argument", c, n)
	}
}

func FuzzCommandReader(f *testing.F) {
	for _, seed := range []string{
		"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n",
		"PING\r\n",
		"ECHO \"a\\x41\" 'b'\r\n",
		"*1\r\n$9223372036854775807\r\n",
		"*9223372036854775807\r\n",
		"*11\r\n",
		"*1\r\n$16385\r\n",
		strings.Repeat("a ", 1000) + "\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$4\r\nQUIT\r\n",
		"\x00\xff\r\n*",
	} {
		f.Add([]byte(seed), true)
		f.Add([]byte(seed), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, authed bool) {
		limits := CommandLimits{MaxBulkLen: 1 << 16, QueryBufferLimit: 1 << 18}
		got, err := readAll(bytes.NewReader(in), authed, limits)
		if err == nil {
			t.Fatal("readAll ended without an error")
		}
		// Every command read must survive a round trip through the
		// multibulk encoding: the reader and the writer agree.
		for _, c := range got {
			if len(c) == 0 {
				t.Fatal("empty command returned")
			}
			enc := AppendCommandStrings(nil, c...)
			again, err := readAll(bytes.NewReader(enc), true, CommandLimits{})
			if err != io.EOF || len(again) != 1 || strings.Join(again[0], "\x00") != strings.Join(c, "\x00") {
				t.Fatalf("round trip of %q: %q, %v", c, again, err)
			}
		}
	})
}

// chunks hands out one chunk of its input per Read.
type chunks struct{ c []string }

func (r *chunks) Read(p []byte) (int, error) {
	if len(r.c) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.c[0])
	r.c[0] = r.c[0][n:]
	if r.c[0] == "" {
		r.c = r.c[1:]
	}
	return n, nil
}

// TestCommandReaderKeptArguments: the commands of a pipeline share memory
// for their argument lists (argSlots), yet a caller may keep and extend
// any of them: what it holds never changes when it appends to another
// command's arguments or reads the next pipelines.
func TestCommandReaderKeptArguments(t *testing.T) {
	acquire := func(key string) string {
		return "*3\r\n$3\r\nGET\r\n$" + string(rune('0'+len(key))) + "\r\n" + key + "\r\n$1\r\n5\r\n"
	}
	tests := []struct {
		name   string
		chunks []string
	}{
		{name: "one pipeline", chunks: []string{acquire("a") + acquire("b") + acquire("c")}},
		{name: "pipelines", chunks: []string{acquire("a") + acquire("b"), acquire("c"), "PING x\r\n" + acquire("d")}},
		{name: "split command", chunks: []string{acquire("a") + acquire("b")[:7], acquire("b")[7:] + acquire("c")}},
		{name: "lone commands", chunks: []string{acquire("a"), acquire("b"), acquire("c")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rd := NewCommandReader(&chunks{c: slices.Clone(tc.chunks)}, CommandLimits{})
			rd.Authenticated = true
			var kept [][][]byte
			var want [][]string
			for {
				cmds, err := rd.ReadCommands(nil)
				for _, c := range cmds {
					if len(c) != cap(c) {
						t.Fatalf("%q: capacity %d for %d arguments: an append would write into another command's", c, cap(c), len(c))
					}
					var s []string
					for _, a := range c {
						s = append(s, string(a))
					}
					want = append(want, s)
					kept = append(kept, c)
				}
				for i := range cmds {
					cmds[i] = append(cmds[i], []byte("appended"))
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					break
				}
			}
			if len(kept) < 3 {
				t.Fatalf("%d commands read", len(kept))
			}
			for i, c := range kept {
				var s []string
				for _, a := range c {
					s = append(s, string(a))
				}
				if !slices.Equal(s, want[i]) {
					t.Errorf("command %d is now %q, was %q", i, s, want[i])
				}
			}
		})
	}
}

// repeat hands out the same pipeline on every Read.
type repeat struct{ p []byte }

func (r repeat) Read(b []byte) (int, error) { return copy(b, r.p), nil }

// BenchmarkCommandReader reads pipelines of depth THROTTLE.ACQUIREs, as
// redis-benchmark -P sends them; an op is one command.
//
//	go test ./internal/resp -run x -bench CommandReader -benchmem
func BenchmarkCommandReader(b *testing.B) {
	cmd := "*4\r\n$16\r\nTHROTTLE.ACQUIRE\r\n$21\r\nkey12345:000000001234\r\n$4\r\n1000\r\n$1\r\n5\r\n"
	for _, depth := range []int{1, 16} {
		b.Run("P"+strconv.Itoa(depth), func(b *testing.B) {
			rd := NewCommandReader(repeat{[]byte(strings.Repeat(cmd, depth))}, CommandLimits{})
			rd.Authenticated = true
			var batch [][][]byte
			b.ReportAllocs()
			for n := 0; n < b.N; n += len(batch) {
				var err error
				if batch, err = rd.ReadCommands(batch[:0]); err != nil || len(batch) != depth {
					b.Fatalf("%d commands, %v", len(batch), err)
				}
			}
		})
	}
}
