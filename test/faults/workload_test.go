package faults_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"
)

// keySpec is a throttle key and the arguments every client uses with it.
type keySpec struct {
	name          string
	iv, max, slop int64
	hot           bool // contended by every client; checked for linearizability
}

// hotKeys cover the three shapes of the rule: reservations up to a queue of
// 3, a single slot, and max 0 (grant only when the interval has passed).
var hotKeys = []*keySpec{
	{name: "hot-queue", iv: 40, max: 3, slop: 4, hot: true},
	{name: "hot-single", iv: 100, max: 1, slop: 10, hot: true},
	{name: "hot-nowait", iv: 30, max: 0, slop: 3, hot: true},
}

const coldKeys = 100

func coldKey(i int) *keySpec {
	return &keySpec{name: fmt.Sprintf("cold-%03d", i), iv: 500, max: 2, slop: 50}
}

// opRecord is one THROTTLE.ACQUIRE as a client saw it.
type opRecord struct {
	client int
	node   string
	key    *keySpec
	// call and ret are monotonic times since the run started; the wall
	// times match them against the nodes' logs.
	call, ret         time.Duration
	callWall, retWall time.Time
	replied           bool      // a permit reply came back
	out               acqOutput // the reply, or unknown with its error
	notSent           bool      // no attempt's connection could be opened: certainly never applied
	// token is the call's idempotency token (ID); every attempt of the
	// call sends it. attempts counts the attempts sent (a call whose
	// outcome was unknown is sent again, through another node, at most
	// maxAttempts times in all).
	token    string
	attempts int
	// dup is the reply to a deliberate resend of a granted call's token
	// (dupSent): it must be the first reply again (checkTokens).
	dupSent bool
	dup     acqOutput
}

// maxAttempts bounds the attempts of one call.
const maxAttempts = 3

// tokenlessEvery: one call in tokenlessEvery is sent without a token.
const tokenlessEvery = 3

// dupEvery: one granted call in dupEvery is sent again with its token, to
// check that the token is never granted twice.
const dupEvery = 8

// recorder collects the history of a run.
type recorder struct {
	start time.Time
	mu    sync.Mutex
	ops   []opRecord
}

func (r *recorder) now() time.Duration { return time.Since(r.start) }

func (r *recorder) add(op opRecord) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

func (r *recorder) history() []opRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]opRecord(nil), r.ops...)
}

// opTimeout bounds one call: longer than a forward (LeaderWait + ApplyTimeout,
// 7 s) and a stopped node's pause, so that a timeout is rare and counted as
// an unknown outcome.
const opTimeout = 25 * time.Second

// runClients runs n clients until ctx ends, each calling THROTTLE.ACQUIRE
// through a random node on a hot key (60%) or a cold one, with a short
// random pause between calls. It returns when every client has finished
// its last call.
func runClients(ctx context.Context, c *cluster, seed uint64, n int, rec *recorder) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)+1))
			for ctx.Err() == nil {
				node := c.ids[rng.IntN(len(c.ids))]
				k := coldKey(rng.IntN(coldKeys))
				if rng.IntN(10) < 6 {
					k = hotKeys[rng.IntN(len(hotKeys))]
				}
				rec.add(acquire(c, rec, rng, i, node, k))
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(2+rng.IntN(7)) * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
}

// acquire makes one call and records it. The call is not tied to the run's
// context: a call in flight when the run ends still completes, so its
// outcome is known. Most calls carry a random token; when an attempt's
// outcome is unknown it is sent again with the same token through another
// node (the server answers a token it already granted with the first
// reply), up to maxAttempts in all. One call in tokenlessEvery has no
// token and is sent once: the leader may answer such a call's denial
// without the log, which the checks must then allow.
func acquire(c *cluster, rec *recorder, rng *rand.Rand, client int, node string, k *keySpec) opRecord {
	op := opRecord{client: client, node: node, key: k, token: fmt.Sprintf("c%d-%016x%016x", client, rng.Uint64(), rng.Uint64())}
	attempts := maxAttempts
	if rng.IntN(tokenlessEvery) == 0 {
		op.token, attempts = "", 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	op.callWall, op.call = time.Now(), rec.now()
	op.notSent = true
	for a := 0; a < attempts && ctx.Err() == nil; a++ {
		if a > 0 {
			op.node = c.ids[(slices.Index(c.ids, op.node)+1)%len(c.ids)]
		}
		out, replied, notSent := acquireOnce(ctx, c, op.node, k, op.token)
		op.out, op.replied = out, replied
		if !notSent {
			op.notSent = false
			op.attempts++
		}
		if replied {
			break
		}
	}
	op.retWall, op.ret = time.Now(), rec.now()
	if op.token != "" && op.replied && op.out.granted && rng.IntN(dupEvery) == 0 {
		op.dupSent = true
		op.dup, _, _ = acquireOnce(ctx, c, c.ids[rng.IntN(len(c.ids))], k, op.token)
	}
	return op
}

// acquireOnce sends one attempt of a call (with ID token unless token is
// empty).
func acquireOnce(ctx context.Context, c *cluster, node string, k *keySpec, token string) (out acqOutput, replied, notSent bool) {
	args := []any{"THROTTLE.ACQUIRE", k.name, k.iv, k.max, "SLOP", k.slop}
	if token != "" {
		args = append(args, "ID", token)
	}
	v, err := c.client(node).Do(ctx, args...).Int64Slice()
	var dial *net.OpError
	switch {
	case err == nil && len(v) == 5:
		return acqOutput{granted: v[0] == 1, wait: v[1], validAt: v[2], expires: v[3], pending: v[4]}, true, false
	case err == nil:
		return acqOutput{unknown: true, err: fmt.Sprintf("reply of %d elements", len(v))}, false, false
	case errors.As(err, &dial) && dial.Op == "dial":
		return acqOutput{unknown: true, err: err.Error()}, false, true
	default:
		return acqOutput{unknown: true, err: err.Error()}, false, false
	}
}
