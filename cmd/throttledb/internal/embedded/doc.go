// Package embedded runs a throttledb node inside the calling process, for
// tools that need a server and were given none: `throttledb simulate` and
// `throttledb bench` on a fresh clone, with nothing else running.
package embedded
