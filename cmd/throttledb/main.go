package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/server"
)

// subcommands maps a first argument to the tool it runs. Files of this
// package add to it in init.
var subcommands = map[string]func(args []string) error{}

func main() {
	run := runNode
	args := os.Args[1:]
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			run, args = sub, args[1:]
			// The tools report connection errors themselves; go-redis's
			// own log lines about each failed dial would only repeat them.
			redis.SetLogger(quietLogger{})
		}
	}
	if err := run(args); err != nil {
		log.Fatal(err)
	}
}

// runNode runs one throttledb node until SIGINT or SIGTERM.
func runNode(args []string) error {
	var (
		cfg  server.Config
		join string
	)
	fs := flag.NewFlagSet("throttledb", flag.ExitOnError)
	fs.StringVar(&cfg.ID, "id", "", "node ID, unique in the cluster (default: the raft address)")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:6380", "RESP listen address")
	fs.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "RESP address other nodes use to reach this one (default: --addr; required if --addr binds 0.0.0.0)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:7380", "Raft listen address")
	fs.StringVar(&cfg.RaftAdvertise, "raft-advertise", "", "Raft address peers dial (default: --raft-addr; required if --raft-addr binds 0.0.0.0)")
	fs.StringVar(&cfg.DataDir, "data", "throttledb-data", "data directory (Raft log, snapshots)")
	fs.StringVar(&join, "join", "", "comma-separated RESP addresses of cluster members to join")
	fs.StringVar(&cfg.RequirePass, "requirepass", "", "password clients must AUTH with (same on every node)")
	fs.DurationVar(&cfg.LeaderWait, "leader-wait", 2*time.Second, "how long a command waits for a leader before CLUSTERDOWN")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 8192, "log entries between snapshots")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	// Client limits, with Redis's names and defaults.
	fs.IntVar(&cfg.MaxClients, "maxclients", 10000, "maximum open client connections")
	timeout := fs.Int("timeout", 0, "close a client idle for this many seconds (0: never)")
	cfg.ProtoMaxBulkLen = 512 << 20
	fs.Var(memoryFlag{&cfg.ProtoMaxBulkLen}, "proto-max-bulk-len", "largest argument a client may send (units: kb, mb, gb)")
	cfg.ClientQueryBufferLimit = 1 << 30
	fs.Var(memoryFlag{&cfg.ClientQueryBufferLimit}, "client-query-buffer-limit", "most a client may buffer towards incomplete commands")
	protectedMode := true
	fs.Var(yesNoFlag{&protectedMode}, "protected-mode", "yes: without a password, refuse clients not on loopback (yes|no)")
	// Test-only fault-injection hooks (test/faults), hidden from -h.
	fs.Var(peerAddrsFlag{&cfg.DebugPeerRaftAddrs}, "debug-peer-raft-addrs", "TEST ONLY: id=host:port,... Raft address to dial per member")
	fs.Var(peerAddrsFlag{&cfg.DebugPeerRESPAddrs}, "debug-peer-resp-addrs", "TEST ONLY: id=host:port,... RESP address to forward to per member")
	fs.DurationVar(&cfg.DebugClockOffset, "debug-clock-offset", 0, "TEST ONLY: added to this node's wall clock")
	fs.Usage = usageWithoutDebug(fs)
	fs.Parse(args)
	cfg.Timeout = time.Duration(*timeout) * time.Second
	cfg.ProtectedModeOff = !protectedMode
	if fs.NArg() > 0 {
		// A mistyped subcommand must not start a node on the default ports.
		return fmt.Errorf("unknown command %q (subcommands: %s; run a node with flags only, see -h)", fs.Arg(0), subcommandNames())
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if join != "" {
		cfg.Join = strings.Split(join, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	<-ctx.Done()
	cfg.Logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func subcommandNames() string {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// quietLogger drops go-redis's internal log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
