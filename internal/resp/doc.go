// Package resp is a minimal client side of the Redis serialization protocol
// (RESP2 and RESP3) used by throttledb for talking to other cluster members.
//
// It serves two purposes:
//
//   - A Raft follower forwards a client's command to the leader's RESP port
//     and relays the leader's reply back to the client byte for byte.
//     [ReadReply] therefore returns the raw, validated bytes of exactly one
//     reply rather than a decoded value.
//   - At start-up a node sends RAFT.JOIN to an existing member through a
//     [Pool].
//
// Commands are encoded with [AppendCommand] as RESP arrays of bulk strings.
// [Pool] keeps a few idle connections to one address and [Pools] keeps one
// [Pool] per address. A RESP error reply is never turned into a Go error:
// Go errors are reserved for network and protocol failures, and protocol
// violations wrap [ErrProtocol].
//
// Everything here uses only the standard library and is hardened against
// hostile input: see [MaxBulkLen], [MaxAggregateLen], [MaxDepth] and
// [MaxLineLen].
package resp
