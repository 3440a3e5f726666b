package faults_test

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// The model of THROTTLE.ACQUIRE checked for linearizability (fsm/throttle.go,
// decide). The replicated state of one key is its last granted slot; an
// acquire applied at cluster time now:
//
//   - absent or expired (now >= last+interval): granted now, last = now,
//     reply (1, 0, now, now+slop, 0);
//   - else, with pending = ceil((last-now)/interval) if last > now, else 0,
//     and pending < max: granted the slot last+interval (reserved when it is
//     after now), reply (1, slot-now, slot, slot+slop, ceil((slot-now)/interval));
//   - else denied, unchanged, reply (0, wait, -1, -1, pending) with wait =
//     last-(max-1)*interval-now (max >= 1) or last+interval-now (max = 0).
//
// Cluster time is stamped by the leader and is never seen by the client
// directly, but every reply determines the now it was decided at, given the
// state: valid_at-wait_ms for a grant, last-(max-1)*interval-wait_ms (or
// last+interval-wait_ms) for a denial. The model therefore takes no clock
// input: it derives now from the reply and requires that cluster time never
// runs backwards along the linearization (the state machine's clock is
// max(clock, entry time), so entries of one key apply at non-decreasing
// times).
//
// Denials are the exception, as README.md promises ("Denials without the
// log"): the leader answers a certain denial without a log entry, decided
// on its applied state at its own cluster time, max(clock, its wall
// clock). The state is exact (nothing on the key was in flight), so a
// denial must still be explained by a last slot in the range at a time
// not before the clock; but no entry carries its time, so a later call
// may be decided at an earlier cluster time (a leader deposed while its
// clock ran ahead of its successor's). So a denial narrows the range and
// leaves the clock as it was. Grants still advance it: a grant after a
// denial on the same state is decided after the denial's time anyway,
// since it needs the slot the denial found taken to have passed.
//
// Operations whose outcome is unknown (a timeout, TRYAGAIN, CLUSTERDOWN, a
// broken connection: anything but a reply) may have been applied at some
// unknown time, or not at all. After such an operation the key's last slot
// is known only to lie in a range, so the model's state is a range of
// possible last slots [lo, hi] and a lower bound on cluster time, and the
// model is nondeterministic (porcupine's power-set construction): an unknown
// operation leads to "not applied or denied" (state unchanged), "granted
// now" (last is some time at or after both the clock and lo+interval), or
// "reserved" (last moves up one interval). Every acknowledged reply then
// narrows the range again. The ranges over-approximate what is possible,
// never under-approximate it, so the check has no false alarms; a known
// reply that no state in the range explains is a violation.
const (
	absent = -(int64(1) << 61) // last slot of a key that was never granted
	never  = int64(1) << 61    // an unbounded upper end of the range
)

// acqInput is one THROTTLE.ACQUIRE's arguments (the key is the partition).
type acqInput struct {
	key            string
	iv, max, slop  int64
	node           string
	client, opIndx int
}

// acqOutput is its reply, or unknown.
type acqOutput struct {
	unknown                         bool
	err                             string
	granted                         bool
	wait, validAt, expires, pending int64
}

// keyModelState is one possible state: last slot in [lo, hi], cluster time
// at least clock.
type keyModelState struct{ lo, hi, clock int64 }

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}

// stepAcquire returns the states reachable from s by the operation in with
// reply out (none: the reply is impossible from s).
func stepAcquire(s keyModelState, in acqInput, out acqOutput) []keyModelState {
	iv := in.iv
	if out.unknown {
		next := []keyModelState{s} // not applied, or denied
		// Granted now, at some now >= clock with now >= last+iv.
		lo := max(s.clock, s.lo+iv, 0)
		next = append(next, keyModelState{lo: lo, hi: never, clock: lo})
		// Reserved last+iv: needs now in [max(clock, last-(max-1)iv), last+iv).
		if in.max >= 1 && s.hi != absent && s.hi+iv > s.clock {
			l := max(s.lo, s.clock-iv+1)
			hi := s.hi
			if hi != never {
				hi += iv
			}
			next = append(next, keyModelState{lo: l + iv, hi: hi, clock: max(s.clock, l-(in.max-1)*iv)})
		}
		return next
	}
	if out.granted {
		if out.expires != out.validAt+in.slop || out.wait < 0 {
			return nil
		}
		if out.wait == 0 { // granted now: absent or expired at now = valid_at
			now := out.validAt
			if now < s.clock || s.lo+iv > now || out.pending != 0 {
				return nil
			}
			return []keyModelState{{lo: now, hi: now, clock: now}}
		}
		// Reserved: slot = last+iv, decided at now = slot-wait.
		now, last := out.validAt-out.wait, out.validAt-iv
		if now < s.clock || last < s.lo || last > s.hi || out.wait > in.max*iv || out.pending != ceilDiv(out.wait, iv) {
			return nil
		}
		return []keyModelState{{lo: out.validAt, hi: out.validAt, clock: now}}
	}
	// Denied: last-now = d.
	if out.validAt != -1 || out.expires != -1 || out.wait <= 0 {
		return nil
	}
	d := out.wait - iv
	if in.max >= 1 {
		d = (in.max-1)*iv + out.wait
	}
	pending := int64(0)
	if d > 0 {
		pending = ceilDiv(d, iv)
	}
	if out.pending != pending || s.hi == absent || s.hi-d < s.clock {
		return nil
	}
	// The denial's now is at least the clock, so last >= clock+d; it does
	// not raise the clock (see the model's comment: denials without the
	// log).
	lo := max(s.lo, s.clock+d)
	return []keyModelState{{lo: lo, hi: s.hi, clock: s.clock}}
}

// acquireModel is the porcupine model of one key's acquires.
var acquireModel = (&porcupine.NondeterministicModel{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(acqInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() []any { return []any{keyModelState{lo: absent, hi: absent, clock: 0}} },
	Step: func(state, input, output any) []any {
		var out []any
		for _, s := range stepAcquire(state.(keyModelState), input.(acqInput), output.(acqOutput)) {
			out = append(out, s)
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(keyModelState) == b.(keyModelState) },
	Hash: func(a any) uint64 {
		s := a.(keyModelState)
		return uint64(s.lo)*0x9e3779b97f4a7c15 ^ uint64(s.hi)*0xc2b2ae3d27d4eb4f ^ uint64(s.clock)
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(acqInput), output.(acqOutput)
		const what = "acquire"
		switch {
		case out.unknown:
			return fmt.Sprintf("%s(%d,%d) via %s → unknown (%s)", what, in.iv, in.max, in.node, out.err)
		case out.granted && out.wait == 0:
			return fmt.Sprintf("%s via %s → now %d", what, in.node, out.validAt)
		case out.granted:
			return fmt.Sprintf("%s via %s → slot %d (wait %d, pending %d)", what, in.node, out.validAt, out.wait, out.pending)
		default:
			return fmt.Sprintf("%s via %s → denied (wait %d, pending %d)", what, in.node, out.wait, out.pending)
		}
	},
	DescribeState: func(state any) string {
		s := state.(keyModelState)
		f := func(v int64) string {
			switch v {
			case absent:
				return "none"
			case never:
				return "∞"
			}
			return fmt.Sprint(v)
		}
		if s.lo == s.hi {
			return fmt.Sprintf("last=%s clock≥%d", f(s.lo), s.clock)
		}
		return fmt.Sprintf("last∈[%s,%s] clock≥%d", f(s.lo), f(s.hi), s.clock)
	},
}).ToModel()
