package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// TestSingleNodeKill9KeepsReservations hammers a single node with writers,
// kills it with SIGKILL while writes are in flight, restarts it on the same
// data directory, and checks that every reservation acknowledged before the
// kill is still respected: the next slot of each key comes after the latest
// acknowledged one. It runs with each log store.
func TestSingleNodeKill9KeepsReservations(t *testing.T) {
	for _, store := range []string{server.LogStoreBolt, server.LogStoreWAL} {
		t.Run(store, func(t *testing.T) { testKill9KeepsReservations(t, store) })
	}
}

func testKill9KeepsReservations(t *testing.T, store string) {
	p := testcluster.StartProc(t, bin, testcluster.ProcOptions{Args: []string{"--log-store", store}})
	testcluster.WaitFor(t, 10*time.Second, "single node to lead", func() bool {
		info, err := p.Info(context.Background(), "raft")
		return err == nil && info["raft_ready"] == "true"
	})
	const interval = 60_000 // every grant after the first is a reservation
	keys := []string{"a", "b", "c"}
	var mu sync.Mutex
	lastAck := map[string]int64{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	acked := make(chan struct{}, 1000)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := p.Client()
			for i := 0; ctx.Err() == nil; i++ {
				key := keys[(w+i)%len(keys)]
				pm, err := acquire(ctx, c, key, interval, 1_000_000)
				if err != nil {
					return // the node was killed
				}
				if !pm.granted {
					t.Errorf("denied with max 1e6: %+v", pm)
					return
				}
				mu.Lock()
				lastAck[key] = max(lastAck[key], pm.validAt)
				mu.Unlock()
				select {
				case acked <- struct{}{}:
				default:
				}
			}
		}(w)
	}
	for i := 0; i < 200; i++ { // let a few hundred grants be acknowledged
		<-acked
	}
	p.Kill()
	cancel()
	wg.Wait()

	p.Restart()
	c := p.Client()
	testcluster.WaitFor(t, 10*time.Second, "restarted node to lead", func() bool {
		info, err := p.Info(context.Background(), "raft")
		return err == nil && info["raft_ready"] == "true"
	})
	for _, key := range keys {
		pm, err := acquire(context.Background(), c, key, interval, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		if pm.validAt < lastAck[key]+interval {
			t.Fatalf("key %s: slot %d after restart, but %d was acknowledged before the kill (interval %d)",
				key, pm.validAt, lastAck[key], interval)
		}
	}
	t.Logf("acknowledged before kill -9: %v", lastAck)
}

// TestSigtermClosesCleanly checks that SIGTERM stops a node with exit status
// 0 after closing its Raft log, and that the state survives.
func TestSigtermClosesCleanly(t *testing.T) {
	p := testcluster.StartProc(t, bin, testcluster.ProcOptions{})
	c := p.Client()
	var first permit
	testcluster.WaitFor(t, 10*time.Second, "a first grant", func() bool {
		var err error
		first, err = acquire(context.Background(), c, "k", 30_000, 5)
		return err == nil && first.granted
	})
	if err := p.Term(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if !p.Logged("throttledb node stopped") {
		t.Fatal("no clean-stop log line")
	}
	p.Restart()
	c = p.Client()
	var next permit
	testcluster.WaitFor(t, 10*time.Second, "a grant after restart", func() bool {
		var err error
		next, err = acquire(context.Background(), c, "k", 30_000, 5)
		return err == nil
	})
	if next.validAt != first.validAt+30_000 {
		t.Fatalf("slot after restart %d, want %d", next.validAt, first.validAt+30_000)
	}
}
