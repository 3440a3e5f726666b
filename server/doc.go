// Package server is a throttledb node: the RESP connection loop and its
// command table, Raft setup (raft-boltdb log and stable store, file
// snapshots, a TCP transport with optional mutual TLS and cluster secret),
// the proposer that stamps cluster time into batched log entries, and
// forwarding from followers to the leader.
//
// # From socket to reply
//
//  1. conn.go: acceptLoop admits a connection (--maxclients, protected
//     mode) and serveConn reads everything the client has sent with
//     resp.CommandReader, which enforces Redis's protocol limits.
//  2. table.go: serveRESP checks draining, then either takes a pipeline of
//     THROTTLE.ACQUIREs whole (pipeline.go) or dispatches one command:
//     lookup, arity, AUTH, transaction queueing, in Redis's order, then the
//     handler (cmd_*.go).
//  3. A handler that changes state parses its arguments once into
//     fsm.Commands and calls Server.decide (one proposal; EXEC's commands
//     are one proposal), or, for a pipeline, queues each command.
//  4. router.go decides where: the proposer (proposer.go) when this node is
//     the ready leader, else the forwarder (forwarder.go), which batches the
//     proposals of all connections into RAFT.PROPOSE requests (rpc.go) on
//     one pipelined connection to the leader. On the leader, rpc_conn.go
//     queues each request's proposals at once and answers in order. The
//     router alone waits for a leader (CLUSTERDOWN), routes again when a
//     proposal was certainly not logged (NOTLEADER), and gives up on
//     shutdown.
//  5. The proposer hands Raft one entry per batch; the FSM applies it and
//     returns one fsm.Result per command. The results travel back (through
//     the RPC from a follower) and writeResult turns them into the reply,
//     with the same code on every node. serveConn writes a pipeline's
//     replies at once.
//
// Admin commands (RAFT.JOIN, RAFT.REMOVE, RAFT.TRANSFER, RAFT.BACKUP,
// RAFT.RESTORE) and THROTTLE.PEEK are relayed to the leader byte for byte
// with RAFT.FWD, through the same router.
//
// # Guarantees
//
// Every state change goes through the Raft log and is acknowledged only
// after it is committed on a majority and applied. An outcome Raft reports
// as unknown is an error to the client (TRYAGAIN), never a claimed grant;
// a leader that lost leadership with an entry in flight first waits to
// learn whether the next leader committed it (Server.resolveLost), and a
// follower whose forwarded ACQUIRE or CANCEL got no answer resends it with
// the idempotency token it forwarded it with (Server.decide), which the
// FSM applies at most once. Reads
// that must not be stale (THROTTLE.PEEK) are answered by the leader after
// it confirms its leadership with a quorum. A new leader serves nothing
// until a Barrier has applied everything its predecessors committed.
//
// Errors from fsm and raft are translated to RESP error replies only here,
// in errors.go.
package server
