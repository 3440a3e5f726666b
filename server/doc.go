// Package server is a throttledb node: the RESP listener and its command
// table, Raft setup (raft-boltdb log and stable store, file snapshots, TCP
// transport), the proposer that stamps cluster time into batched log
// entries, and forwarding from followers to the leader.
//
// Every state change goes through the Raft log and is acknowledged only
// after it is committed on a majority and applied; an outcome Raft reports
// as unknown (leadership lost mid-commit) is an error to the client, never a
// claimed grant. Reads that must not be stale (THROTTLE.PEEK) are answered by
// the leader after it confirms its leadership with a quorum. A new leader
// serves nothing until a Barrier has applied everything its predecessors
// committed.
//
// Errors from fsm and raft are translated to RESP error replies only here,
// in errors.go.
package server
