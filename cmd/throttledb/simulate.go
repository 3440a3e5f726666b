package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/throttledb/throttledb/cmd/throttledb/internal/simulate"
)

func init() { subcommands["simulate"] = runSimulate }

// runSimulate runs the exercise's workers demo (README) against a cluster, or an
// embedded single node when no --addr is given:
//
//	throttledb simulate --workers 7 --interval 3s --max 2 --duration 30s [--addr host:port,...] [--key k]
func runSimulate(args []string) error {
	var (
		cfg   simulate.Config
		addrs string
		tlsf  clientTLSFlags
	)
	fs := flag.NewFlagSet("throttledb simulate", flag.ContinueOnError)
	fs.IntVar(&cfg.Workers, "workers", 7, "number of concurrent workers")
	fs.DurationVar(&cfg.Interval, "interval", 3*time.Second, "minimum interval between two requests (min_interval)")
	fs.IntVar(&cfg.Max, "max", 2, "slots that may be reserved ahead (max_permits)")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long workers keep acquiring")
	fs.StringVar(&addrs, "addr", "", "comma-separated RESP addresses of cluster nodes (default: start an embedded single-node server)")
	fs.StringVar(&cfg.Password, "password", "", "password for --addr nodes started with --requirepass (or set "+envPassword+", which ps does not show)")
	fs.StringVar(&cfg.Key, "key", "", "throttle key (default: a fresh simulate-<unix ns> key)")
	tlsf.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("simulate: unexpected arguments %q", fs.Args())
	}
	// simulate.Config treats zero as "default"; on the command line a zero
	// is a mistake.
	switch {
	case cfg.Workers < 1:
		return fmt.Errorf("simulate: --workers must be at least 1")
	case cfg.Interval < time.Millisecond:
		return fmt.Errorf("simulate: --interval must be at least 1ms")
	case cfg.Duration <= 0:
		return fmt.Errorf("simulate: --duration must be positive")
	}
	if addrs != "" {
		for _, a := range strings.Split(addrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.Addrs = append(cfg.Addrs, a)
			}
		}
	}
	var err error
	if cfg.Password, err = clientPassword(cfg.Password, len(cfg.Addrs) > 0); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if cfg.TLSConfig, err = tlsf.config(); err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := simulate.Run(ctx, cfg, os.Stdout)
	if err != nil {
		return fmt.Errorf("simulate: %w", err)
	}
	if !sum.Pass {
		return fmt.Errorf("simulate: spacing check failed: slots only %v apart, interval %v", sum.MinSlotGap, sum.Interval)
	}
	return nil
}
