package main

import (
	"flag"
	"fmt"
	"net"
	"sort"
	"strings"
)

// debugFlagPrefix starts the names of the test-only flags (fault injection:
// see test/faults). They are left out of -h so that nobody mistakes them for
// settings; they are described in cluster.md, "Fault testing".
const debugFlagPrefix = "debug-"

// parsePeerAddrs parses "id=host:port,id=host:port,...", the value of
// --debug-peer-raft-addrs and --debug-peer-resp-addrs: for each member ID,
// the address this node dials to reach it. IDs must be non-empty and
// unique, addresses must be host:port.
func parsePeerAddrs(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || id == "" {
			return nil, fmt.Errorf("%q is not id=host:port", pair)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("id %q given twice", id)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %w", pair, err)
		}
		out[id] = addr
	}
	return out, nil
}

// peerAddrsFlag is a flag.Value for parsePeerAddrs.
type peerAddrsFlag struct{ p *map[string]string }

func (f peerAddrsFlag) String() string {
	if f.p == nil || len(*f.p) == 0 {
		return ""
	}
	pairs := make([]string, 0, len(*f.p))
	for id, a := range *f.p {
		pairs = append(pairs, id+"="+a)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func (f peerAddrsFlag) Set(s string) error {
	m, err := parsePeerAddrs(s)
	if err != nil {
		return err
	}
	*f.p = m
	return nil
}

// usageWithoutDebug is the node's usage message: the tools it also runs,
// then its flags without the test-only debug-* flags.
func usageWithoutDebug(fs *flag.FlagSet) func() {
	return func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: %s [flags]                run a node\n", fs.Name())
		fmt.Fprintf(out, "       %s <command> [flags]      run a tool: %s (each has -h)\n\nNode flags:\n", fs.Name(), subcommandNames())
		hidden := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
		hidden.SetOutput(out)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.HasPrefix(f.Name, debugFlagPrefix) {
				hidden.Var(f.Value, f.Name, f.Usage)
			}
		})
		hidden.PrintDefaults()
	}
}
