// Command throttledb runs a throttledb node: a Redis-protocol server whose
// THROTTLE.ACQUIRE reservations are applied through a Raft log.
//
//	throttledb [flags]               run a node (see -h)
//	throttledb <subcommand> [flags]  run a tool (each file of this package
//	                                 registers one in subcommands)
//
// The files of this package only wire flags to configuration and start
// things; main is the only place that calls log.Fatal.
package main
