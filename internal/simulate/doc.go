// Package simulate is the demo of the original throttling exercise, made
// real: a few workers share one rate-limited "API" through a throttledb
// cluster (an embedded single node by default), each looping acquire, sleep
// until the slot, fake_request, and a summary checks that no two requests
// came closer than the interval allows.
package simulate
