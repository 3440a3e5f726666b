package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/throttledb/throttledb/server"
)

func init() { subcommands["recover"] = runRecover }

// runRecover makes a stopped node the only voter of its cluster, keeping
// its state, after a majority of the cluster is lost for good:
//
//	throttledb recover --id n2 --data throttledb-cluster/n2 --raft-addr 127.0.0.1:7381
func runRecover(args []string) error {
	var cfg server.RecoverConfig
	fs := flag.NewFlagSet("throttledb recover", flag.ContinueOnError)
	fs.StringVar(&cfg.ID, "id", "", "the node's ID, as it runs with (default: --raft-addr)")
	fs.StringVar(&cfg.DataDir, "data", "throttledb-data", "the stopped node's data directory")
	fs.StringVar(&cfg.LogStore, "log-store", "", "the log store to expect: bolt or wal (default: whichever the data directory holds)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:7380", "the Raft address the node will advertise when started again (its --raft-advertise, or --raft-addr)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("recover: unexpected arguments %q", fs.Args())
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := server.Recover(cfg)
	if err != nil {
		return err
	}
	fmt.Printf("recover: %s is now the only voter, at %s; kept log index %d (term %d): %d keys, cluster time %d\n",
		cmp.Or(cfg.ID, cfg.RaftAddr), cfg.RaftAddr, rep.Index, rep.Term, rep.Keys, rep.Clock)
	if len(rep.Forgot) > 0 {
		fmt.Printf("recover: forgot members %v; make sure none of them runs again with its old data\n", rep.Forgot)
	}
	fmt.Println("recover: start the node as usual, then join new nodes (empty data directories) to it")
	return nil
}
