// Package faultproxy is a TCP proxy for one directed network link between
// two nodes, which a fault-injection test can cut and heal (test/faults).
//
// The model of a cut link A→B: everything A initiates towards B stalls. A
// connection A opened to B (through the proxy) that is open when the link is
// cut freezes: the proxy stops passing bytes in both directions, so A's
// request is not delivered, or B's reply to it is not, and A waits until its
// own timeout, as it would for packets lost on a network. A connection A
// opens while the link is cut is accepted and frozen from the start. When
// the link heals, every frozen connection is closed (as a TCP connection
// that timed out during the outage would be) and new connections pass
// again; bytes held during the cut are never delivered. Connections B opens
// to A go through another Link (B→A) and are not affected: a one-way cut
// A→B leaves B able to send to A and get A's replies.
package faultproxy
