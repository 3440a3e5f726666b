// Package simulate is the workers demo of the exercise throttledb grew out of (README), made
// real: a few workers share one rate-limited "API" through a throttledb
// cluster (an embedded single node by default), each looping acquire, sleep
// until the slot, fake_request, and a summary checks that no two requests
// came closer than the interval allows.
package simulate
