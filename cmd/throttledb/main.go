package main

import (
	"context"
	"errors"
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

// runNode runs one throttledb node until SIGINT, SIGTERM or a client's
// SHUTDOWN.
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
	fs.StringVar(&cfg.RequirePass, "requirepass", "", "password clients must AUTH with (same on every node); visible in ps: prefer --requirepass-file or "+envPassword)
	passFile := fs.String("requirepass-file", "", "file whose first line is the password (instead of --requirepass)")
	fs.Var(memoryFlag{&cfg.MaxMemory}, "maxmemory", "cap on the state's memory, in bytes or with a unit (100mb, 1gb); new keys are refused beyond it (0: no limit)")
	fs.DurationVar(&cfg.LeaderWait, "leader-wait", 2*time.Second, "how long a command waits for a leader before CLUSTERDOWN")
	fs.Uint64Var(&cfg.SnapshotThreshold, "snapshot-threshold", 8192, "log entries between snapshots")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text (key=value lines) or json (one object per line)")
	// Client limits, with Redis's names and defaults.
	fs.IntVar(&cfg.MaxClients, "maxclients", 10000, "maximum open client connections")
	timeout := fs.Int("timeout", 0, "close a client idle for this many seconds (0: never)")
	cfg.ProtoMaxBulkLen = 512 << 20
	fs.Var(memoryFlag{&cfg.ProtoMaxBulkLen}, "proto-max-bulk-len", "largest argument a client may send (units: kb, mb, gb)")
	cfg.ClientQueryBufferLimit = 1 << 30
	fs.Var(memoryFlag{&cfg.ClientQueryBufferLimit}, "client-query-buffer-limit", "most a client may buffer towards incomplete commands")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "node certificate (PEM); with --tls-key-file and --tls-ca-cert-file the RESP port speaks TLS only and nodes use mutual TLS; reloaded on SIGHUP")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key-file", "", "private key of --tls-cert-file (PEM)")
	fs.StringVar(&cfg.TLSCACertFile, "tls-ca-cert-file", "", "CA certificate(s) (PEM) that sign node and client certificates")
	fs.StringVar(&cfg.TLSAuthClients, "tls-auth-clients", server.TLSAuthClientsYes, "client certificates on the RESP port: yes (required), optional (verified if presented) or no")
	fs.StringVar(&cfg.ClusterSecret, "cluster-secret", "", "secret nodes authenticate each other with (same on every node; see cluster.md)")
	secretFile := fs.String("cluster-secret-file", "", "file holding --cluster-secret (keeps it out of ps)")
	fs.StringVar(&cfg.LogStore, "log-store", "", "Raft log store of a new data directory: bolt (raft-boltdb) or wal (raft-wal) (default: what the data directory holds, else "+server.DefaultLogStore+")")
	fs.IntVar(&cfg.MaxInFlight, "max-inflight-entries", 1, "log entries the leader has in flight in Raft at once; commands arriving meanwhile fill the next entry (-1: no cap)")
	batchWait := true
	fs.Var(yesNoFlag{&batchWait}, "batch-wait", "yes: before proposing a log entry, the leader waits (at most the last commit's time) for the clients the previous entry answered to send again, when most clients do, so that entries are larger (a follower waits likewise before forwarding a batch); no: propose at once")
	pprofAddr := fs.String("pprof-addr", "", "serve net/http/pprof on this host:port (default: off; bind to loopback, e.g. 127.0.0.1:6060: it has no authentication)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics, /healthz and /readyz on this host:port (default: off; no authentication: bind to loopback or a private network)")
	protectedMode := true
	fs.Var(yesNoFlag{&protectedMode}, "protected-mode", "yes: without a password, refuse clients not on loopback, and refuse to start with a non-loopback Raft address without TLS; no: accept the risk")
	// Test-only fault-injection hooks (test/faults), hidden from -h.
	fs.Var(peerAddrsFlag{&cfg.DebugPeerRaftAddrs}, "debug-peer-raft-addrs", "TEST ONLY: id=host:port,... Raft address to dial per member")
	fs.Var(peerAddrsFlag{&cfg.DebugPeerRESPAddrs}, "debug-peer-resp-addrs", "TEST ONLY: id=host:port,... RESP address to forward to per member")
	fs.DurationVar(&cfg.DebugClockOffset, "debug-clock-offset", 0, "TEST ONLY: added to this node's wall clock")
	fs.Usage = usageWithoutDebug(fs)
	fs.Parse(args)
	cfg.Timeout = time.Duration(*timeout) * time.Second
	cfg.NoProtectedMode = !protectedMode
	cfg.NoBatchWait = !batchWait
	if fs.NArg() > 0 {
		// A mistyped subcommand must not start a node on the default ports.
		return fmt.Errorf("unknown command %q (subcommands: %s; run a node with flags only, see -h)", fs.Arg(0), subcommandNames())
	}
	gc := setGCPercent()

	if *secretFile != "" {
		if cfg.ClusterSecret != "" {
			return fmt.Errorf("set --cluster-secret or --cluster-secret-file, not both")
		}
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--cluster-secret-file: %w", err)
		}
		// An editor's or echo's trailing newline is not part of the secret.
		cfg.ClusterSecret = strings.TrimRight(string(b), "\r\n")
		if cfg.ClusterSecret == "" {
			return fmt.Errorf("--cluster-secret-file %s is empty", *secretFile)
		}
	}

	logger, err := newLogger(os.Stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	pw, warnings, err := passwordSources{flagName: "--requirepass", flag: cfg.RequirePass,
		fileFlag: "--requirepass-file", file: *passFile, env: os.Getenv(envPassword)}.resolve()
	if err != nil {
		return err
	}
	cfg.RequirePass = pw
	for _, w := range warnings {
		cfg.Logger.Warn(w)
	}
	if join != "" {
		cfg.Join = strings.Split(join, ",")
	}

	if *pprofAddr != "" {
		if _, err := servePprof(*pprofAddr, cfg.Logger); err != nil {
			return err
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	gc.watchState(func() int64 { return srv.FSM().MemoryUsage(0) })
	go reloadOnHangup(ctx, srv, cfg.Logger)
	// A client's SHUTDOWN stops the node as SIGTERM does (the server
	// prepared it: see server.Server.StopRequested).
	select {
	case <-ctx.Done():
	case <-srv.StopRequested():
		cfg.Logger.Info("SHUTDOWN by a client")
	}
	cfg.Logger.Info("shutting down")
	notifyWhileStopping(cfg.Logger)
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// reloadOnHangup reloads the node's TLS certificates on every SIGHUP until
// ctx ends. A failed reload keeps the old certificates (ReloadTLS logs
// why); the node carries on either way.
func reloadOnHangup(ctx context.Context, srv *server.Server, lg *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := srv.ReloadTLS(); errors.Is(err, server.ErrTLSNotConfigured) {
				lg.Info("SIGHUP ignored: TLS is not configured")
			}
		}
	}
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
