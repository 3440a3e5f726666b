// Package fsm is throttledb's deterministic state machine: the throttle state
// of every key, the cluster clock, and the RESP address of every member.
//
// Everything that changes state arrives as a Raft log entry (see Entry): a type
// byte, a version byte and a hand-written binary payload. An entry carries the
// leader's wall clock ("cluster time") and a batch of commands. The state
// machine never reads the clock or a random source itself; it advances its
// clock to max(entry time, previous clock), so time never runs backwards on any
// node and every node computes the same answers from the same log.
//
// An ACQUIRE or CANCEL may carry an idempotency token (a client's), or a
// forwarding session and sequence number (a forwarding follower's: see
// Acquire.Session): the state machine remembers the answer to its first
// effect, for its window of cluster time (a client's token for
// TokenWindow, a follower's number for the shorter window it asks for,
// carried in the entry), and answers a repeat of it without acting again.
// Both are replicated state like the keys: in snapshots, the digest and
// the memory count.
//
// The package imports hashicorp/raft only for its FSM and snapshot interfaces.
// Command errors (bad arguments, overflow) travel back in each command's
// Result; Apply panics only when an entry cannot be decoded, because a corrupt
// committed log means the replica can no longer be trusted.
package fsm
