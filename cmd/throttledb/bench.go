package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
//	                 [--max 10] [--pipeline 1] [--verify] [--progress] [--json FILE|-]
//
// A progress line each second goes to stderr when stderr is a terminal (or
// with --progress); --json writes the result as JSON to FILE, or with "-"
// to stdout, the report then going to stderr.
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
	progress := fs.Bool("progress", isTerminal(os.Stderr), "print ops/s, p99 and errors of each second on stderr (default: when stderr is a terminal)")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file (\"-\": to stdout, and the report to stderr)")
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
	if *progress {
		cfg.Progress, cfg.ProgressInPlace = os.Stderr, isTerminal(os.Stderr)
	}
	report := io.Writer(os.Stdout)
	if *jsonOut == "-" {
		report = os.Stderr // stdout holds only the JSON
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg, report)
	// A run that happened (even one cut short, or failing its spacing
	// check) has a result to write.
	if *jsonOut != "" && res.Config.Target != "" {
		if werr := writeJSON(*jsonOut, res); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// writeJSON writes v as indented JSON to path, or to stdout for "-".
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// isTerminal reports whether f is a terminal (a character device: also
// true of /dev/null, where progress lines are harmless).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
