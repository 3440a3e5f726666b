// Package faults_test runs throttledb clusters of three real node processes
// under faults on a seeded schedule (crashes, pauses, partitions, one-way
// loss, clock skew, snapshot restarts, membership changes) while clients
// acquire permits through every node (each call with its own idempotency
// token, resent with it after an unknown outcome), then checks the
// recorded history: spacing of grants, that no token is granted twice,
// linearizability (porcupine), convergence of the replicas, that a
// minority never grants, and availability. See cluster.md,
// "Fault testing".
package faults_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/internal/testcluster"
)

var (
	bin string // the throttledb binary under test

	flagSeed     = flag.Uint64("faults.seed", 0, "run only this seed (replay a failure)")
	flagSeeds    = flag.Int("faults.seeds", 3, "number of seeds to run, 1..N")
	flagFirst    = flag.Uint64("faults.first", 1, "first seed of -faults.seeds")
	flagDuration = flag.Duration("faults.duration", 0, "fault phase per seed (default 12s, 6s with -short)")
	flagOut      = flag.String("faults.out", "", "directory for the logs and porcupine visualisations of failed seeds (default: a new temporary directory, kept only on failure)")
	flagStores   = flag.String("faults.log-store", "bolt,wal", "the log stores (--log-store) to run every seed with, comma-separated")
)

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv("THROTTLEDB_TEST_LOG") == "" {
		redis.SetLogger(quietLogger{})
	}
	dir, err := os.MkdirTemp("", "throttledb-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = testcluster.BuildBinary(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
