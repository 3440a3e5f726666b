// Package launcher runs a local throttledb cluster as child processes of one
// command (throttledb cluster): it re-executes the throttledb binary once per
// node, the first node bootstrapping and the others joining it, prefixes
// every line a child logs with its node ID, acts on one node at a time on
// commands typed on its input (restart, stop, start, kill; see Commands),
// and on cancellation sends each child SIGTERM (by pid) and waits for it to
// exit.
package launcher
