package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/throttledb/throttledb/fsm"
)

// ErrNoState is returned by Recover when the data directory holds no Raft
// state (no log, no snapshot): there is nothing to recover, and a fresh node
// should bootstrap or join instead.
var ErrNoState = errors.New("no Raft state in the data directory")

// RecoverConfig configures Recover. ID and DataDir mean what they mean in
// Config.
type RecoverConfig struct {
	// ID is the node's ID. Default: RaftAddr (as Config.ID defaults).
	ID string
	// DataDir is the stopped node's data directory. Required.
	DataDir string
	// RaftAddr is the Raft address the node will advertise when it starts
	// again: its RaftAdvertise, or else its RaftAddr. Required, with a real
	// host and port (peers will dial it).
	RaftAddr string
	// Logger receives Raft's log lines. Default: slog.Default().
	Logger *slog.Logger
	// LogStore is the log store to expect (Config.LogStore). Default:
	// whichever the data directory holds.
	LogStore string
}

// RecoverReport says what Recover kept.
type RecoverReport struct {
	// Index and Term are those of the newest entry recovered.
	Index, Term uint64
	// Keys is the number of unexpired keys at Clock, the recovered cluster
	// time.
	Keys  int
	Clock int64
	// Forgot lists the other members whose RESP addresses were forgotten.
	Forgot []string
}

// Recover rewrites a stopped node's Raft state so that, when started again,
// it is the only voter of its cluster, keeping every entry its log and
// snapshots hold. It is for a cluster that has permanently lost a majority
// of its nodes: it cannot elect a leader, and so cannot grant or back up.
// After Recover, start the node as usual and let new nodes (with empty data
// directories) join it.
//
// Why this is dangerous, and when it is safe: the other members are not
// told. If one of them still runs with the old configuration, two clusters
// could grant the same slots. Run Recover only when the others are gone for
// good (or wiped), on the node with the highest applied index. Entries of
// this node's log that were never committed are applied too; that can only
// add reservations, never let two grants of a key come closer than its
// interval.
func Recover(cfg RecoverConfig) (RecoverReport, error) {
	var rep RecoverReport
	if cfg.DataDir == "" {
		return rep, fmt.Errorf("recover: data directory not set")
	}
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	host, port, err := net.SplitHostPort(cfg.RaftAddr)
	if err != nil || host == "" || port == "0" || net.ParseIP(host).IsUnspecified() {
		return rep, fmt.Errorf("recover: raft address %q: give the host:port peers will dial", cfg.RaftAddr)
	}
	if cfg.ID == "" {
		cfg.ID = cfg.RaftAddr
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hlog := raftLogger(cfg.Logger)
	store, snaps, _, err := openStores(cfg.DataDir, cfg.LogStore, false, hlog, nil)
	if err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	defer store.Close()
	if ok, err := raft.HasExistingState(store, store, snaps); err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	} else if !ok {
		return rep, fmt.Errorf("recover: %w: %s", ErrNoState, cfg.DataDir)
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hlog
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.RaftAddr))
	defer trans.Close()
	f := &recoveringFSM{FSM: fsm.New(fsm.Config{Logger: cfg.Logger}), keep: cfg.ID}
	only := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(cfg.ID), Address: raft.ServerAddress(cfg.RaftAddr),
	}}}
	if err := raft.RecoverCluster(rc, f, store, store, snaps, trans, only); err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	list, err := snaps.List()
	if err != nil || len(list) == 0 {
		return rep, fmt.Errorf("recover: the recovery snapshot is missing: %v", err)
	}
	rep.Index, rep.Term = list[0].Index, list[0].Term

	// Why: Raft elects by comparing the terms of the nodes' last entries.
	// A data directory that holds only a snapshot copied from elsewhere has
	// current term 0, so this node's next entries would carry a term lower
	// than the snapshot's; a node joining later and missing those entries
	// could then look more up to date than one that has them, win an
	// election, and overwrite committed entries. Starting from at least
	// the snapshot's term keeps terms in the log increasing.
	// ("CurrentTerm" is hashicorp/raft's stable-store key: part of its
	// on-disk format, so it cannot change under us.)
	cur, err := store.GetUint64(keyCurrentTerm)
	if err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return rep, fmt.Errorf("recover: read current term: %w", err)
	}
	if cur < rep.Term {
		if err := store.SetUint64(keyCurrentTerm, rep.Term); err != nil {
			return rep, fmt.Errorf("recover: raise current term: %w", err)
		}
	}
	rep.Clock = f.Clock(0)
	rep.Keys = f.DBSize(rep.Clock)
	rep.Forgot = f.forgot
	return rep, nil
}

// keyCurrentTerm is the stable-store key under which hashicorp/raft keeps
// the current term.
var keyCurrentTerm = []byte("CurrentTerm")

// recoveringFSM is the state machine RecoverCluster rebuilds. Before the
// recovery snapshot is taken, it forgets the RESP addresses of every member
// but the one recovered, so that nothing forwards to nodes that are gone.
// The change is an ordinary entry applied at the recovered cluster time;
// every node of the new cluster starts from the snapshot that holds it.
type recoveringFSM struct {
	*fsm.FSM
	keep   string
	forgot []string
}

func (r *recoveringFSM) Snapshot() (raft.FSMSnapshot, error) {
	var cmds []fsm.Command
	for _, n := range r.Nodes() {
		if n.ID != r.keep {
			cmds = append(cmds, fsm.RemoveNode{ID: n.ID})
			r.forgot = append(r.forgot, n.ID)
		}
	}
	if len(cmds) > 0 {
		e := fsm.Entry{Now: r.Clock(0), Commands: cmds}
		r.Apply(&raft.Log{Data: e.Encode()})
	}
	return r.FSM.Snapshot()
}
