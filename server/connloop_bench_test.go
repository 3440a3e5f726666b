//go:build unix

package server_test

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/throttledb/throttledb/internal/testcluster"
)

// BenchmarkConnLoop measures the server's request path as redis-benchmark
// drives it: 50 raw connections, each sending pipelines of depth
// THROTTLE.ACQUIREs (10,000 keys, all granted, so every command goes through
// the log) and reading the replies, against one node. The client side only
// writes prepared bytes and counts reply lines, so allocs/op is nearly all
// the server's: reader, dispatch, proposer, Raft, state machine, reply.
// cpu-µs/op is the process's user+system CPU (getrusage) per command, the
// figure bench/cpu.sh reports per process, with the client's small share
// in it.
//
//	go test ./server -run x -bench ConnLoop -benchmem -benchtime 100000x
func BenchmarkConnLoop(b *testing.B) {
	for _, depth := range []int{1, 16} {
		b.Run("P"+strconv.Itoa(depth), func(b *testing.B) {
			n := testcluster.StartNode(b, testcluster.Options{})
			benchConnLoop(b, n.Addr(), 50, depth)
		})
	}
}

func benchConnLoop(b *testing.B, addr string, conns, depth int) {
	const keys = 10000
	// Every request of a connection is prepared up front: a pipeline is a
	// slice of it.
	reqs := make([][]byte, keys)
	for i := range reqs {
		key := "key:" + strconv.Itoa(i)
		reqs[i] = fmt.Appendf(nil, "*4\r\n$16\r\nTHROTTLE.ACQUIRE\r\n$%d\r\n%s\r\n$1\r\n1\r\n$10\r\n1000000000\r\n", len(key), key)
	}
	ncs := make([]net.Conn, conns)
	for i := range ncs {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		ncs[i] = nc
	}
	rounds := (b.N + conns*depth - 1) / (conns * depth)
	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c, nc := range ncs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pipeline(nc, reqs, c*7919, rounds, depth)
		}()
	}
	wg.Wait()
	b.StopTimer()
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(rounds*conns*depth), "cpu-µs/op")
}

// pipeline sends rounds pipelines of depth requests on nc, starting at
// request first, and reads each pipeline's replies (five-integer arrays:
// six lines each) before sending the next.
func pipeline(nc net.Conn, reqs [][]byte, first, rounds, depth int) error {
	var out []byte
	buf := make([]byte, 64<<10)
	next := first
	for range rounds {
		out = out[:0]
		for range depth {
			out = append(out, reqs[next%len(reqs)]...)
			next++
		}
		if _, err := nc.Write(out); err != nil {
			return err
		}
		for lines := 0; lines < 6*depth; {
			n, err := nc.Read(buf)
			if err != nil {
				return err
			}
			if (lines == 0 && buf[0] != '*') || bytes.Contains(buf[:n], []byte("\n-")) {
				return fmt.Errorf("unexpected reply in %q", buf[:n])
			}
			lines += bytes.Count(buf[:n], []byte("\n"))
		}
	}
	return nil
}
