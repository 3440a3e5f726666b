package server

import (
	"bytes"
	"io"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

// proposedFor returns the commands the server would propose for a client's
// command args (what the table's propose, cmdRaftJoin and cmdExec
// propose once their arguments are accepted), or nil when it refuses them.
func proposedFor(args [][]byte) []fsm.Command {
	switch strings.ToLower(string(args[0])) {
	case "throttle.acquire", "throttle.reset", "throttle.cancel":
		if cmd, err := commands[strings.ToLower(string(args[0]))].propose(args); err == nil {
			return []fsm.Command{cmd}
		}
	case "raft.join":
		if len(args) == 4 {
			if n, _, err := parseJoin(args); err == nil {
				return []fsm.Command{n}
			}
		}
	}
	return nil
}

// checkProposals applies, as one log entry stamped now, whatever the server
// would propose for each command, through Apply as Raft would, and checks
// the promise that nothing a client can send makes an entry Apply cannot
// decode, or a state whose snapshot cannot be restored.
func checkProposals(t *testing.T, f *fsm.FSM, now int64, cmds [][][]byte) {
	t.Helper()
	var props []fsm.Command
	for _, args := range cmds {
		if len(args) > 0 {
			props = append(props, proposedFor(args)...)
		}
	}
	if len(props) == 0 {
		return
	}
	e := fsm.Entry{Now: now, Commands: props}
	data := e.Encode()
	got, err := fsm.DecodeEntry(data)
	if err != nil {
		t.Fatalf("an entry the server would propose does not decode: %v\n%#v", err, e)
	}
	if !reflect.DeepEqual(got.Commands, e.Commands) {
		t.Fatalf("entry changed in encoding:\n got %#v\nwant %#v", got, e)
	}
	res := f.Apply(&raft.Log{Index: 1, Data: data}) // panics on failure
	if rs, ok := res.([]fsm.Result); !ok || len(rs) != len(props) {
		t.Fatalf("Apply returned %#v", res)
	}
	var img bytes.Buffer
	if err := f.Backup(&img); err != nil {
		t.Fatal(err)
	}
	if err := fsm.New(fsm.Config{}).Restore(io.NopCloser(bytes.NewReader(img.Bytes()))); err != nil {
		t.Fatalf("the state clients built cannot be restored from its snapshot: %v", err)
	}
	if err := fsm.ValidateBackup(bytes.NewReader(img.Bytes()), f.Clock(0)); err != nil {
		t.Fatalf("the state clients built is not a valid backup: %v", err)
	}
}

// FuzzClientCommandsApply splits the input into client commands (one per
// line, arguments separated by spaces) and checks checkProposals on them.
func FuzzClientCommandsApply(f *testing.F) {
	for _, seed := range []string{
		"THROTTLE.ACQUIRE k 1000 5",
		"THROTTLE.ACQUIRE k 4611686018427387904 9\nTHROTTLE.ACQUIRE k 4611686018427387904 9",
		"THROTTLE.ACQUIRE k 1 9223372036854775807 SLOP 9223372036854775806",
		"THROTTLE.ACQUIRE k -1 5\nTHROTTLE.ACQUIRE  0 0",
		"THROTTLE.RESET a b c a",
		"THROTTLE.ACQUIRE k 10 5 COST 3 ID t\nTHROTTLE.ACQUIRE k 10 5 ID t COST 3\nTHROTTLE.CANCEL k 1795000000000 ID t",
		"THROTTLE.ACQUIRE k 4611686018427387904 2 COST 2\nTHROTTLE.CANCEL k -1\nTHROTTLE.ACQUIRE k 1 1 COST 0",
		"RAFT.JOIN n9 127.0.0.1:7390 127.0.0.1:6390",
		"RAFT.JOIN n9 nope nope\nRAFT.JOIN n9 h:1 [::1]:99999",
		"RAFT.EXEC 4 THROTTLE.ACQUIRE k 10 1 2 THROTTLE.RESET k 3 RAFT.EXEC 1 x",
		"RAFT.EXEC 9223372036854775807 x",
	} {
		f.Add(int64(1_795_000_000_000), seed)
	}
	f.Fuzz(func(t *testing.T, now int64, input string) {
		if now < 0 || now > fsm.MaxClock {
			now = 1_795_000_000_000 // a leader stamps its wall clock
		}
		var cmds [][][]byte
		for _, line := range strings.Split(input, "\n") {
			var args [][]byte
			for _, a := range strings.Split(line, " ") {
				args = append(args, []byte(a))
			}
			cmds = append(cmds, args)
		}
		checkProposals(t, fsm.New(fsm.Config{}), now, cmds)
	})
}

// TestRandomClientCommandsApply is the same property over random commands
// built from nasty values, with state carried from entry to entry so that
// later commands meet what earlier ones left.
func TestRandomClientCommandsApply(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	ints := []string{"0", "1", "-1", "2", "1000", "9223372036854775807", "-9223372036854775808",
		"4611686018427387904", "9223372036854775806", "x", "", "1e3"}
	keys := []string{"k", "", "a", strings.Repeat("l", fsm.MaxKeyLen), strings.Repeat("m", fsm.MaxKeyLen+1), "\r\n", "\x00"}
	addrs := []string{"127.0.0.1:1", "h:65535", "h:65536", "nope", "", "[::1]:0", strings.Repeat("a", fsm.MaxNodeFieldLen) + ":1"}
	pick := func(s []string) []byte { return []byte(s[rng.Intn(len(s))]) }
	acquire := func() [][]byte {
		a := [][]byte{[]byte("THROTTLE.ACQUIRE"), pick(keys), pick(ints), pick(ints)}
		if rng.Intn(2) == 0 {
			a = append(a, []byte("SLOP"), pick(ints))
		}
		if rng.Intn(3) == 0 {
			a = append(a, []byte("COST"), pick(ints))
		}
		if rng.Intn(3) == 0 {
			a = append(a, []byte("ID"), pick(keys))
		}
		return a
	}
	reset := func() [][]byte {
		a := [][]byte{[]byte("THROTTLE.RESET")}
		for i := rng.Intn(4); i >= 0; i-- {
			a = append(a, pick(keys))
		}
		return a
	}
	f := fsm.New(fsm.Config{})
	now := int64(1_795_000_000_000)
	for i := 0; i < 3000; i++ {
		var cmds [][][]byte
		for j := rng.Intn(5); j >= 0; j-- {
			switch rng.Intn(4) {
			case 0:
				cmds = append(cmds, acquire())
			case 1:
				cmds = append(cmds, reset())
				if rng.Intn(2) == 0 {
					cmds = append(cmds, [][]byte{[]byte("THROTTLE.CANCEL"), pick(keys), pick(ints), []byte("ID"), pick(keys)})
				}
			case 2:
				cmds = append(cmds, [][]byte{[]byte("RAFT.JOIN"), []byte("n" + strconv.Itoa(rng.Intn(5))), pick(addrs), pick(addrs)})
			default:
				// A transaction: EXEC proposes its commands together.
				for k := rng.Intn(3); k >= 0; k-- {
					cmds = append(cmds, acquire(), reset())
				}
			}
		}
		now += int64(rng.Intn(3)) * 1000
		checkProposals(t, f, now, cmds)
	}
}
