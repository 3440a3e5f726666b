package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/throttledb/throttledb/cmd/throttledb/internal/launcher"
)

func init() { subcommands["cluster"] = runCluster }

// runCluster runs a local cluster as child processes of this binary:
//
//	throttledb cluster --nodes 3 [--base-port 6380] [--raft-base-port 7380]
//	                   [--data throttledb-cluster] [--requirepass-file path]
//	                   [--log-store bolt|wal]
//
// The password (--requirepass, --requirepass-file or THROTTLEDB_PASSWORD)
// reaches each node in its environment, never on its command line.
//
// It reads commands on stdin (restart 2, stop n3, start n3, kill 1, nodes;
// see launcher.Commands) that act on one node, and stops every node
// (SIGTERM) on Ctrl-C or SIGTERM and waits for them.
func runCluster(args []string) error {
	var cfg launcher.Config
	fs := flag.NewFlagSet("throttledb cluster", flag.ContinueOnError)
	fs.IntVar(&cfg.Nodes, "nodes", 3, "number of nodes")
	fs.IntVar(&cfg.BasePort, "base-port", 6380, "RESP port of node 1; node i listens on base-port+i-1 (0: any free port)")
	fs.IntVar(&cfg.RaftBasePort, "raft-base-port", 7380, "Raft port of node 1; node i uses raft-base-port+i-1 (0: any free port)")
	fs.StringVar(&cfg.Host, "host", "127.0.0.1", "address every node listens on and advertises (a reachable host, not 0.0.0.0)")
	fs.StringVar(&cfg.DataDir, "data", "throttledb-cluster", "cluster directory; node i keeps its data in <data>/n<i>")
	fs.StringVar(&cfg.RequirePass, "requirepass", "", "password clients must AUTH with, given to every node in its environment; visible in ps: prefer --requirepass-file or "+envPassword)
	passFile := fs.String("requirepass-file", "", "file whose first line is the password (instead of --requirepass)")
	logLevel := fs.String("log-level", "", "log level passed to every node (default: the node's default)")
	logStore := fs.String("log-store", "", "--log-store passed to every node: bolt or wal (default: the node's default)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: throttledb cluster [flags]\n\n"+
			"Runs a local cluster: node 1 bootstraps, nodes 2..N join it; each node\n"+
			"is this binary run as a child process, its log lines prefixed with its id.\n"+
			"Ctrl-C stops every node (SIGTERM, by pid) and waits for them. While it\n"+
			"runs, type commands on its stdin:\n\n%s\n\n", indent(launcher.Commands, "  "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("cluster: unexpected arguments %q", fs.Args())
	}
	pw, warnings, err := passwordSources{flagName: "--requirepass", flag: cfg.RequirePass,
		fileFlag: "--requirepass-file", file: *passFile, env: os.Getenv(envPassword)}.resolve()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cfg.RequirePass = pw
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "launcher | warning:", w)
	}
	if *logLevel != "" {
		cfg.ExtraArgs = append(cfg.ExtraArgs, "--log-level", *logLevel)
	}
	if *logStore != "" {
		cfg.ExtraArgs = append(cfg.ExtraArgs, "--log-store", *logStore)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	cfg.Commands = os.Stdin
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := launcher.Run(ctx, cfg); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// indent prefixes every line of s with prefix.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}
