package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/throttledb/throttledb/cmd/throttledb/internal/bench"
)

func init() { subcommands["bench"] = runBench }

// runBench runs a load generator against throttledb (an embedded single
// node when no --addr is given) or against Redis with the equivalent Lua
// script:
//
//	throttledb bench [--addr host:port,...] [--password p] [--target throttledb|redis-lua]
//	                 [--clients 32] [--duration 10s] [--keys 1000] [--interval 1000]
//	                 [--max 10] [--pipeline 1] [--verify]
func runBench(args []string) error {
	var (
		cfg      bench.Config
		addrs    string
		target   string
		interval int64
	)
	fs := flag.NewFlagSet("throttledb bench", flag.ContinueOnError)
	fs.StringVar(&addrs, "addr", "", "comma-separated RESP addresses (default: start an embedded single-node throttledb server)")
	fs.StringVar(&cfg.Password, "password", "", "password for --addr servers (or set "+envPassword+", which ps does not show)")
	fs.StringVar(&target, "target", string(bench.TargetThrottleDB), "throttledb (THROTTLE.ACQUIRE) or redis-lua (the same rule as a Lua script on a plain Redis; needs --addr)")
	fs.IntVar(&cfg.Clients, "clients", 32, "concurrent clients, one connection each")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&cfg.Keys, "keys", 1000, "number of keys, chosen uniformly")
	fs.Int64Var(&interval, "interval", 1000, "throttle interval in milliseconds")
	fs.IntVar(&cfg.Max, "max", 10, "throttle max: future slots a key may hold")
	fs.IntVar(&cfg.Pipeline, "pipeline", 1, "commands per round trip")
	fs.BoolVar(&cfg.Verify, "verify", false, "record every grant and check that slots of a key are at least --interval apart")
	var tlsf clientTLSFlags
	tlsf.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	// bench.Config treats zero as "default"; on the command line a zero is
	// a mistake.
	switch {
	case cfg.Clients < 1:
		return fmt.Errorf("bench: --clients must be at least 1")
	case cfg.Duration <= 0:
		return fmt.Errorf("bench: --duration must be positive")
	case cfg.Keys < 1:
		return fmt.Errorf("bench: --keys must be at least 1")
	case interval < 1 || interval > int64(math.MaxInt64/time.Millisecond):
		return fmt.Errorf("bench: --interval must be at least 1 (milliseconds), and fit a time.Duration")
	case cfg.Pipeline < 1:
		return fmt.Errorf("bench: --pipeline must be at least 1")
	}
	cfg.Target = bench.Target(target)
	cfg.Interval = time.Duration(interval) * time.Millisecond
	for _, a := range strings.Split(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Addrs = append(cfg.Addrs, a)
		}
	}
	var err error
	if cfg.Password, err = clientPassword(cfg.Password, len(cfg.Addrs) > 0); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if cfg.TLSConfig, err = tlsf.config(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := bench.Run(ctx, cfg, os.Stdout); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
