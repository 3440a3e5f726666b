package server_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

// BenchmarkAcquire measures THROTTLE.ACQUIRE end to end, over loopback with
// go-redis clients in parallel (b.RunParallel, GOMAXPROCS×-cpu goroutines):
// parse, propose, batch, commit with fsync, apply, reply.
//
//	go test ./server -run x -bench Acquire -cpu 1,8,32 -benchtime 3s
func BenchmarkAcquire(b *testing.B) {
	b.Run("leader", func(b *testing.B) {
		n := testcluster.StartNode(b, testcluster.Options{})
		benchAcquire(b, n.Addr())
	})
	b.Run("follower-of-3", func(b *testing.B) {
		c := testcluster.Start(b, 3, testcluster.Options{})
		benchAcquire(b, c.Followers()[0].Addr())
	})
}

func benchAcquire(b *testing.B, addr string) {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 256})
	defer c.Close()
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		key := "bench:" + strconv.FormatInt(next.Add(1), 10)
		for pb.Next() {
			if err := c.Do(ctx, "THROTTLE.ACQUIRE", key, 1, 1_000_000_000).Err(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAcquirePipelined measures one connection sending pipelines of
// THROTTLE.ACQUIREs, which the leader queues together so that they share
// log entries (serveBatch). ns/op is per command.
//
//	go test ./server -run x -bench AcquirePipelined -benchtime 3s
func BenchmarkAcquirePipelined(b *testing.B) {
	for _, depth := range []int{1, 16, 64} {
		b.Run("depth-"+strconv.Itoa(depth), func(b *testing.B) {
			n := testcluster.StartNode(b, testcluster.Options{})
			c := redis.NewClient(&redis.Options{Addr: n.Addr(), PoolSize: 1})
			defer c.Close()
			ctx := context.Background()
			b.ResetTimer()
			for done := 0; done < b.N; done += depth {
				pipe := c.Pipeline()
				for i := 0; i < depth; i++ {
					pipe.Do(ctx, "THROTTLE.ACQUIRE", "bench:"+strconv.Itoa(i), 1, 1_000_000_000)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
