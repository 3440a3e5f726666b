// Package server is a throttledb node: the RESP connection loop and its
// command table, Raft setup (raft-wal or raft-boltdb log store, file
// snapshots, a TCP transport with optional mutual TLS and cluster secret),
// the proposer that stamps cluster time into batched log entries, and
// forwarding from followers to the leader.
//
// # From socket to reply
//
//  1. conn.go: acceptLoop admits a connection (--maxclients, protected
//     mode); serveConn reads everything the client has sent with
//     resp.CommandReader (Redis's protocol limits) and hands the batch to
//     serveBatch (a single command is a batch of one).
//  2. dispatch.go: for each command, prepare applies the rules every
//     command passes, in one place: lookup, arity and AUTH (admissible),
//     then MULTI's queueing. A command whose table row (table.go) has
//     propose is parsed once into an fsm.Command and queued to the router
//     without waiting; any other command waits for the replies before it,
//     then its row's run (cmd_*.go) returns its reply or error. On the
//     ready leader, an ACQUIRE the log would certainly deny is answered
//     at once instead (fastdeny.go, with the proposer's in-flight view
//     in inflight.go and fsm.WouldDeny); on a follower, one the
//     connection allows the leader to decide so is marked early
//     (decidable) and the leader answers it the same way (rpc_conn.go,
//     denier.denyForwarded).
//  3. router.go decides where a proposal goes: the proposer (proposer.go)
//     when this node is the ready leader, else the forwarder
//     (forwarder.go), which batches the proposals of all connections into
//     RAFT.PROPOSE requests (rpc.go) on pipelined connections to the
//     leader, where rpc_conn.go queues them to its proposer. The router
//     alone waits for a leader (CLUSTERDOWN), routes again what was
//     certainly not logged (NOTLEADER), and gives up on shutdown;
//     forwardFailure alone says what a failed forward means.
//  4. The proposer hands Raft one entry per batch; the FSM applies it and
//     returns one fsm.Result per command, which travels back (through the
//     RPC from a follower) and resultReply turns into the reply, on every
//     node alike.
//  5. reply.go: writeReply, the one writer, writes each reply in order
//     (errorText turns an error into its RESP text); serveConn sends the
//     batch's replies at once.
//
// Admin commands (RAFT.JOIN, RAFT.REMOVE, RAFT.TRANSFER, RAFT.BACKUP,
// RAFT.RESTORE) and THROTTLE.PEEK run on the leader through the same
// router (Server.atLeader); from a follower they are relayed byte for byte
// with RAFT.FWD.
//
// # Guarantees
//
// Every state change goes through the Raft log and is acknowledged only
// after it is committed on a majority and applied. An outcome Raft reports
// as unknown is an error to the client (TRYAGAIN), never a claimed grant;
// a leader that lost leadership with an entry in flight first waits to
// learn whether the next leader committed it (Server.resolveLost), and a
// follower whose forwarded ACQUIRE or CANCEL got no answer resends it with
// the identity it forwarded it with (the client's token, or the router's
// forwarding session and a number: forwardSession, router.decide), which
// the FSM applies at most once, within the resend horizon for which the
// FSM remembers that identity (resendWindow). An entry not committed
// within Config.ApplyTimeout of being handed to Raft (a stalled majority
// keeps the leader's lease) is answered unknown too, and a proposal that
// waits longer than Config.LeaderWait to be handed to Raft is refused
// (CLUSTERDOWN), so no write waits for ever and a follower's resend is
// stamped within the window its first attempt's identity is remembered
// for (proposer.takeToken, entryWait). Reads
// that must not be stale (THROTTLE.PEEK) are answered by the leader after
// it confirms its leadership with a quorum. A new leader serves nothing
// until a Barrier has applied everything its predecessors committed.
//
// Every wait ends: a wait on a Raft future ends once Raft has stopped
// (raftwait.go: hashicorp/raft can drop queued futures at shutdown), a
// stop closes the Raft connections so a stalled peer cannot hold it
// (tcpStreamLayer.closeConns), and the forwarder's waits on a leader end
// when it closes. INFO latency (latency.go) times each stage of a write,
// from the forwarder's gather to the reply's write.
//
// Errors from fsm and raft are translated to RESP error replies only here,
// in errors.go.
package server
