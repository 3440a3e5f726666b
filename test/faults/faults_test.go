package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestFaults runs the fault schedule of each seed against a fresh
// three-node cluster and checks the history (see the package comment). A
// failure names its seed; replay it with -faults.seed=N.
func TestFaults(t *testing.T) {
	d := *flagDuration
	if d == 0 {
		d = 12 * time.Second
		if testing.Short() {
			d = 6 * time.Second
		}
	}
	var seeds []uint64
	if *flagSeed != 0 {
		seeds = []uint64{*flagSeed}
	} else {
		n := *flagSeeds
		if testing.Short() {
			n = 1
		}
		for i := range n {
			seeds = append(seeds, *flagFirst+uint64(i))
		}
	}
	// Every seed runs with each log store: the same schedule of faults, so
	// a failure with one store and not the other points at the store.
	for _, store := range strings.Split(*flagStores, ",") {
		t.Run(store, func(t *testing.T) {
			for _, seed := range seeds {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runSeed(t, store, seed, d) })
			}
		})
	}
}

func runSeed(t *testing.T, store string, seed uint64, d time.Duration) {
	ids := []string{"n1", "n2", "n3"}
	s := makeSchedule(seed, ids, d)
	t.Logf("%s\nreplay with: go test ./test/faults/ -run TestFaults -faults.log-store=%s -faults.seed=%d -faults.duration=%v", s, store, seed, d)

	var dir string
	artifacts := func() string {
		if dir != "" {
			return dir
		}
		var err error
		if *flagOut != "" {
			dir = filepath.Join(*flagOut, fmt.Sprintf("%s-seed-%d", store, seed))
			err = os.MkdirAll(dir, 0o755)
		} else {
			dir, err = os.MkdirTemp("", fmt.Sprintf("throttledb-faults-%s-seed-%d-", store, seed))
		}
		if err != nil {
			t.Fatalf("artifacts directory: %v", err)
		}
		return dir
	}

	c := startCluster(t, store, ids, map[string]time.Duration{s.skewed: s.offset})
	rec := &recorder{start: time.Now()}
	nClients := 10 + rand.New(rand.NewPCG(seed, 1)).IntN(11)
	ctx, stop := context.WithCancel(context.Background())
	clientsDone := make(chan struct{})
	go func() { runClients(ctx, c, seed, nClients, rec); close(clientsDone) }()

	var eps []*episode
	hardStop := time.Now().Add(3 * d)
	for i, f := range s.faults {
		if time.Now().After(hardStop) {
			t.Logf("fault phase cut short after %d of %d faults (3× the planned duration)", i, len(s.faults))
			break
		}
		e := runFault(c, s, f, rec.now)
		t.Logf("fault %d: %s", i+1, e)
		eps = append(eps, e)
	}
	stop()
	select {
	case <-clientsDone:
	case <-time.After(opTimeout + 10*time.Second):
		t.Fatalf("clients did not finish within %v of the end", opTimeout+10*time.Second)
	}
	ops := rec.history()
	sort.Slice(ops, func(i, j int) bool { return ops[i].call < ops[j].call })
	var replied, granted, reserved, unknown, notSent int
	for _, o := range ops {
		switch {
		case o.replied:
			replied++
			if o.out.granted && o.out.wait == 0 {
				granted++
			} else if o.out.granted {
				reserved++
			}
		case o.notSent:
			notSent++
		default:
			unknown++
		}
	}
	t.Logf("history: %d calls by %d clients: %d replies (%d granted now, %d reserved, %d denied), %d unknown outcomes, %d never sent",
		len(ops), nClients, replied, granted, reserved, replied-granted-reserved, unknown, notSent)
	if granted == 0 || reserved == 0 || replied == granted+reserved {
		t.Errorf("the history lacks a kind of reply (granted now %d, reserved %d, denied %d): the checks would prove little",
			granted, reserved, replied-granted-reserved)
	}

	checkConvergence(t, c)
	reportFastDenials(t, c)
	checkSpacing(t, ops)
	checkTokens(t, ops)
	checkMinority(t, ops, eps)
	checkLinearizable(t, ops, artifacts)
	reportAvailability(t, ops, eps)
	if t.Failed() {
		writeArtifacts(t, c, ops, artifacts())
		t.Logf("seed %d failed: history and node logs in %s; replay with -faults.seed=%d", seed, dir, seed)
	} else if dir != "" && *flagOut == "" {
		os.RemoveAll(dir)
	}
}
