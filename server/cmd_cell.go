package server

import (
	"github.com/throttledb/throttledb/fsm"
)

// proposeCell parses CL.THROTTLE key max_burst count_per_period period
// [quantity] (quantity 1 when left out) and validates it, so that bad
// input is refused before anything reaches the log. A quantity of 0 (a
// peek) goes through the log too: it changes nothing, but its answer is
// then as linearizable as any other CL.THROTTLE's.
func proposeCell(args [][]byte) (fsm.Command, error) {
	if len(args) != 5 && len(args) != 6 {
		return nil, errArity("cl.throttle")
	}
	c := fsm.CellThrottle{Key: string(args[1]), Quantity: 1}
	for i, dst := range []*int64{&c.MaxBurst, &c.Count, &c.Period, &c.Quantity}[:len(args)-2] {
		v, ok := parseInt(args[i+2])
		if !ok {
			return nil, errNotInteger
		}
		*dst = v
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// cellReply is CL.THROTTLE's reply: five integers, as redis-cell sends them.
func cellReply(r fsm.CellResult) any {
	out := make([]any, 0, 5)
	for _, v := range r.Reply() {
		out = append(out, v)
	}
	return out
}
