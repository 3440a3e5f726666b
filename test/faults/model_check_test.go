package faults_test

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestAcquireModel checks the linearizability model itself on small
// histories, legal and illegal, so that the fault runs' verdicts mean
// something.
func TestAcquireModel(t *testing.T) {
	in := acqInput{key: "k", iv: 100, max: 1, slop: 10}
	in0 := in
	in0.max = 0
	now := func(v int64) acqOutput { return acqOutput{granted: true, validAt: v, expires: v + 10} }
	slot := func(v, wait, pending int64) acqOutput {
		return acqOutput{granted: true, wait: wait, validAt: v, expires: v + 10, pending: pending}
	}
	denied := func(wait, pending int64) acqOutput {
		return acqOutput{wait: wait, validAt: -1, expires: -1, pending: pending}
	}
	unknown := acqOutput{unknown: true, err: "timeout"}
	op := func(input acqInput, call, ret int64, out acqOutput) porcupine.Operation {
		return porcupine.Operation{Input: input, Call: call, Return: ret, Output: out}
	}
	const inf = 1000
	tests := []struct {
		name  string
		hist  []porcupine.Operation
		legal bool
	}{
		{"grant, reserve, deny", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 2, 3, slot(1100, 50, 1)), op(in, 4, 5, denied(40, 1)),
		}, true},
		{"max 0: deny until expired, then grant", []porcupine.Operation{
			op(in0, 0, 1, now(1000)), op(in0, 2, 3, denied(30, 0)), op(in0, 4, 5, now(1100)),
		}, true},
		{"the same slot twice", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 2, 3, now(1050)),
		}, false},
		{"a reservation skipping a slot", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 2, 3, slot(1200, 150, 2)),
		}, false},
		{"cluster time running backwards", []porcupine.Operation{
			op(in, 0, 1, now(2000)), op(in, 2, 3, slot(2100, 1200, 12)),
		}, false},
		{"a later denial at an earlier time (a deposed leader's clock ahead)", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 2, 3, slot(1100, 50, 1)), op(in, 4, 5, denied(20, 1)), op(in, 6, 7, denied(40, 1)),
		}, true},
		{"a denial before the clock", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 2, 3, slot(1100, 50, 1)), op(in, 4, 5, denied(60, 1)),
		}, false},
		{"a denial from a state the key was never in", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 2, 3, slot(1100, 50, 1)), op(in, 4, 5, slot(1200, 100, 1)), op(in, 6, 7, denied(150, 2)),
		}, false},
		{"a grant after a denial at an earlier time", []porcupine.Operation{
			op(in0, 0, 1, now(1000)), op(in0, 2, 3, denied(30, 0)), op(in0, 4, 5, now(1050)),
		}, false},
		{"a denial of a free key", []porcupine.Operation{
			op(in, 0, 1, denied(40, 1)),
		}, false},
		{"a wrong expiry", []porcupine.Operation{
			op(in, 0, 1, acqOutput{granted: true, validAt: 1000, expires: 1001}),
		}, false},
		{"concurrent calls linearized in reply order", []porcupine.Operation{
			op(in, 0, 10, slot(1100, 50, 1)), op(in, 1, 9, now(1000)),
		}, true},
		{"reservation explained by an unknown grant", []porcupine.Operation{
			op(in, 0, inf, unknown), op(in, 2, 3, slot(1100, 50, 1)),
		}, true},
		{"reservation with nothing before it", []porcupine.Operation{
			op(in, 2, 3, slot(1100, 50, 1)),
		}, false},
		{"unknown that did not happen", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 1, inf, unknown), op(in, 2, 3, now(1100)),
		}, true},
		{"unknown reservation then known one", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 1, inf, unknown), op(in, 2, 3, slot(1200, 50, 1)),
		}, true},
		{"an unknown grant at a later time", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 1, inf, unknown), op(in, 2, 3, slot(1300, 50, 1)),
		}, true},
		{"one unknown op explains one slot, not two", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 1, inf, unknown), op(in, 2, 3, slot(1200, 50, 1)),
			op(in, 4, 5, slot(1400, 50, 1)),
		}, false},
		{"an unknown op cannot act before it is invoked", []porcupine.Operation{
			op(in, 0, 1, now(1000)), op(in, 2, 3, slot(1200, 50, 1)), op(in, 4, inf, unknown),
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(acquireModel, tt.hist); got != tt.legal {
				t.Fatalf("linearizable = %v, want %v", got, tt.legal)
			}
		})
	}
}
