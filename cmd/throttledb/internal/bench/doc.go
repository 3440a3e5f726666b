// Package bench is throttledb's load generator (`throttledb bench`), and the
// means of comparing throttledb with what teams usually build instead: a Lua
// script on one Redis.
//
// A run is a closed loop: Config.Clients clients, each with its own
// connection, each sending THROTTLE.ACQUIRE (or, in a pipeline, several)
// and sending again as soon as the reply arrives, for Config.Duration. Keys
// are chosen uniformly from Config.Keys keys whose names carry a prefix made
// from the start time, so runs never see each other's state. The throughput
// of a closed loop is what the target sustains with that many callers
// waiting on it; it says nothing about latency under a lighter load.
//
// Two targets take the same load:
//
//   - TargetThrottleDB: throttledb nodes (or, with no address, an embedded
//     single node in a temporary directory). Every grant is committed to the
//     Raft log, and fsynced, before it is answered.
//   - TargetRedisLua: a plain Redis, running the script returned by
//     LuaScript (throttle.lua; loaded once with SCRIPT LOAD, called with
//     EVALSHA). It implements throttledb's rule and reply, so both targets
//     do the same work and give the same answers; the tests compare them
//     reply by reply. Its durability is whatever Redis is configured with.
//
// The report gives the throughput; the counts of grants of the current
// moment, reservations, denials and errors; and latency percentiles. With
// a pipeline, latency is per round trip, which is what a caller waits;
// dividing it by the pipeline's length would describe no caller. The
// percentiles come from the server's own histogram (internal/latency: log
// linear, 64 buckets per power of two of nanoseconds), so each is at most
// 1.6% above the true value, and a run of any length takes the same memory.
//
// Config.Verify records every grant and checks at the end that, per key,
// consecutive granted slots are at least the interval apart and that no two
// grants share a slot: the property a throttle exists for, checked on both
// targets. Its memory is bounded too: a key is granted at most
// Duration/Interval + Max + 1 slots.
//
// While the load runs, Config.Progress receives a line per second (that
// second's throughput, p99 and errors); a Result marshals to the JSON that
// `throttledb bench --json` writes (MarshalJSON; the shape is pinned by a
// test and shown in the README).
//
// bench/compare.sh runs the same load against a single throttledb node, a
// three-node cluster (through a follower and through the leader), and
// redis-server with appendfsync always and everysec, and prints a table.
package bench
