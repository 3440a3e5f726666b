package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/redis/go-redis/v9"
	"github.com/throttledb/throttledb/client"
	"github.com/throttledb/throttledb/fsm"
	"github.com/throttledb/throttledb/internal/testcerts"
	"github.com/throttledb/throttledb/internal/testcluster"
	"github.com/throttledb/throttledb/server"
)

// TestTLSCluster: a three-node cluster with TLS (and with or without a
// cluster secret) forms, forwards and serves the Go client and redis-cli
// over TLS through leader and followers, and refuses clients without TLS
// or without a client certificate.
func TestTLSCluster(t *testing.T) {
	for _, secret := range []string{"", "a cluster secret"} {
		t.Run("secret="+strconv.Quote(secret), func(t *testing.T) {
			certs := testcerts.New(t)
			c := testcluster.Start(t, 3, testcluster.Options{TLS: certs, ClusterSecret: secret, RequirePass: "pw"})
			ctx := context.Background()
			leader := c.WaitForLeader(10 * time.Second)
			var slots []time.Time
			for _, n := range append([]*testcluster.Node{leader}, c.Followers()...) {
				cl, err := client.New(client.Options{Addrs: []string{n.Addr()}, Password: "pw", TLSConfig: certs.ClientConfig(t, true)})
				if err != nil {
					t.Fatal(err)
				}
				p, err := cl.Acquire(ctx, "k", time.Second, 10)
				cl.Close()
				if err != nil || !p.Granted {
					t.Fatalf("Go client over TLS through %s: %+v, %v", n, p, err)
				}
				slots = append(slots, p.ValidAt)
			}
			for i := 1; i < len(slots); i++ {
				if slots[i].Sub(slots[i-1]) < time.Second {
					t.Fatalf("slots %v are not spaced by the interval: not one throttle", slots)
				}
			}
			// A transaction through a follower is forwarded as one RAFT.PROPOSE.
			f := c.Followers()[0]
			cmds, err := f.Client().TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Do(ctx, "THROTTLE.ACQUIRE", "tx", 1000, 10)
				p.Do(ctx, "THROTTLE.RESET", "tx")
				return nil
			})
			if err != nil || len(cmds) != 2 {
				t.Fatalf("MULTI/EXEC through a follower: %v %v", cmds, err)
			}

			plain := redis.NewClient(&redis.Options{Addr: leader.Addr(), Password: "pw", MaxRetries: -1})
			defer plain.Close()
			if err := plain.Ping(ctx).Err(); err == nil {
				t.Fatal("a client without TLS was served")
			}
			noCert := redis.NewClient(&redis.Options{Addr: leader.Addr(), Password: "pw", MaxRetries: -1, TLSConfig: certs.ClientConfig(t, false)})
			defer noCert.Close()
			if err := noCert.Ping(ctx).Err(); err == nil {
				t.Fatal("a TLS client without a certificate was served with --tls-auth-clients yes")
			}

			tlsArgs := []string{"--tls", "--cacert", certs.CA, "--cert", certs.ClientCert, "--key", certs.ClientKey, "--no-auth-warning", "-a", "pw"}
			for _, n := range []*testcluster.Node{leader, f} {
				out := redisCLI(t, n.Addr(), "", append(tlsArgs, "THROTTLE.ACQUIRE", "cli", "1000", "10")...)
				if len(out) != 5 || out[0] != "1" {
					t.Fatalf("redis-cli --tls through %s: %q", n, out)
				}
			}
		})
	}
}

// TestTLSAuthClients: --tls-auth-clients optional serves a client without
// a certificate and verifies one that has one; no does not ask.
func TestTLSAuthClients(t *testing.T) {
	certs := testcerts.New(t)
	foreign := testcerts.New(t)
	ctx := context.Background()
	for _, tc := range []struct {
		mode                    string
		noCert, good, wrongCert bool // served?
	}{
		{"optional", true, true, false},
		{"no", true, true, true},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			n, err := server.Start(ctx, server.Config{
				Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", DataDir: t.TempDir(), Logger: testcluster.Logger("n1"),
				TLSCertFile: certs.NodeCert, TLSKeyFile: certs.NodeKey, TLSCACertFile: certs.CA, TLSAuthClients: tc.mode,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			wrong := certs.ClientConfig(t, false)
			wrongCert := foreign.ClientConfig(t, true)
			wrong.Certificates = wrongCert.Certificates
			for _, cc := range []struct {
				name string
				cfg  *tls.Config
				want bool
			}{
				{"no certificate", certs.ClientConfig(t, false), tc.noCert},
				{"the CA's certificate", certs.ClientConfig(t, true), tc.good},
				{"another CA's certificate", wrong, tc.wrongCert},
			} {
				r := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, TLSConfig: cc.cfg})
				err := r.Ping(ctx).Err()
				r.Close()
				if (err == nil) != cc.want {
					t.Errorf("%s: PING error %v, want served %v", cc.name, err, cc.want)
				}
			}
		})
	}
}

// TestClusterSecretNodeSessions: with a cluster secret, the internal
// commands need the node user, nodes forward and join with it even when
// their client passwords differ, and the client password does not open
// them.
func TestClusterSecretNodeSessions(t *testing.T) {
	ctx := context.Background()
	const secret = "0123456789abcdef"
	c := testcluster.Start(t, 2, testcluster.Options{ClusterSecret: secret, RequirePass: "old"})
	// A node with another client password joins and forwards: nodes
	// authenticate with the secret, not the password.
	n3 := testcluster.StartNode(t, testcluster.Options{ID: "n3", Join: []string{c.Nodes[0].Addr()}, ClusterSecret: secret, RequirePass: "new"})
	testcluster.WaitFor(t, 10*time.Second, "n3 to know the leader", func() bool { _, _, err := n3.Server.Leader(); return err == nil })
	if n3.Server.IsLeader() {
		t.Skip("n3 leads: it cannot show forwarding") // an election in between; rare
	}
	if err := n3.Client().Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 1).Err(); err != nil {
		t.Fatalf("forwarding from a node with another password: %v", err)
	}
	if _, err := n3.Client().TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Do(ctx, "THROTTLE.ACQUIRE", "k", 1000, 1)
		return nil
	}); err != nil {
		t.Fatalf("a transaction forwarded from a node with another password: %v", err)
	}

	leader := c.WaitForLeader(10 * time.Second)
	cl := leader.Client() // the client password only
	for _, cmd := range [][]any{
		{"RAFT.FWD", "PING"},
		{"RAFT.PROPOSE", "x"},
		{"RAFT.JOIN", "evil", "127.0.0.1:1", "127.0.0.1:2"},
	} {
		want := "NOPERM User default has no permissions to run the '" + strings.ToLower(cmd[0].(string)) + "' command"
		if err := cl.Do(ctx, cmd...).Err(); err == nil || err.Error() != want {
			t.Errorf("%v with the client password: %v, want %q", cmd, err, want)
		}
	}
	if slices.ContainsFunc(server.RaftServers(leader.Server), func(s string) bool { return strings.HasPrefix(s, "evil@") }) {
		t.Fatal("RAFT.JOIN with the client password added a member")
	}

	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{server.NodeUser, secret, true},
		{server.NodeUser, secret + "x", false},
		{server.NodeUser, "old", false},
		{"default", secret, false},
	} {
		r := redis.NewClient(&redis.Options{Addr: leader.Addr(), Username: tc.user, Password: tc.pass, MaxRetries: -1})
		err := r.Do(ctx, "RAFT.FWD", "PING").Err()
		r.Close()
		if (err == nil) != tc.ok {
			t.Errorf("AUTH %s %s, then RAFT.FWD PING: %v; want success %v", tc.user, tc.pass, err, tc.ok)
		}
	}
}

// TestClusterSecretWithoutPassword: a node user session needs the secret
// even on a node that has no client password.
func TestClusterSecretWithoutPassword(t *testing.T) {
	ctx := context.Background()
	n := testcluster.StartNode(t, testcluster.Options{ClusterSecret: "s3cret"})
	if err := n.Client().Do(ctx, "RAFT.FWD", "PING").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("RAFT.FWD without AUTH on a node without a password: %v, want NOPERM", err)
	}
	r := redis.NewClient(&redis.Options{Addr: n.Addr(), Username: server.NodeUser, Password: "s3cret", MaxRetries: -1, PoolSize: 1})
	defer r.Close()
	if err := r.Do(ctx, "RAFT.FWD", "PING").Err(); err != nil {
		t.Fatalf("RAFT.FWD as the node user: %v", err)
	}
	// AUTH as the default user switches the session back to a client's.
	if err := r.Do(ctx, "AUTH", "default", "anything").Err(); err != nil {
		t.Fatalf("AUTH default on a node without a password: %v", err)
	}
	if err := r.Do(ctx, "RAFT.FWD", "PING").Err(); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("RAFT.FWD after AUTH default: %v, want NOPERM", err)
	}
}

func TestProtectedModeRaft(t *testing.T) {
	ctx := context.Background()
	certs := testcerts.New(t)
	for _, tc := range []struct {
		name    string
		mutate  func(*server.Config)
		refused bool
	}{
		{"non-loopback advertise, no TLS", func(*server.Config) {}, true},
		{"non-loopback advertise, protected mode off", func(c *server.Config) { c.NoProtectedMode = true }, false},
		{"non-loopback advertise, TLS", func(c *server.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.TLSCACertFile = certs.NodeCert, certs.NodeKey, certs.CA
		}, false},
		{"loopback, no TLS", func(c *server.Config) { c.RaftAdvertise = "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Bound to loopback, advertised as a LAN address: peers would
			// dial the node from elsewhere. (192.0.2.0/24 is reserved for
			// documentation; nothing dials it here.)
			cfg := server.Config{Addr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0", RaftAdvertise: "192.0.2.1:7380",
				DataDir: t.TempDir(), Logger: testcluster.Logger("n1")}
			tc.mutate(&cfg)
			s, err := server.Start(ctx, cfg)
			if !tc.refused {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
			if !errors.Is(err, server.ErrProtectedMode) || !strings.Contains(err.Error(), "--protected-mode no") {
				t.Fatalf("error %q: want ErrProtectedMode naming --protected-mode no", err)
			}
		})
	}
}

// foreignTLSLayer is an attacker's raft stream layer: TLS with a
// certificate from a CA the cluster does not trust.
type foreignTLSLayer struct {
	net.Listener
	cfg *tls.Config
}

func (l foreignTLSLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(a), l.cfg)
}

// attack sends, with trans, what the attacker sent to target: a
// heartbeat with a higher term, an entry that resets a key, a RequestVote
// with a higher term and TimeoutNow. It returns the RPCs' errors.
func attack(t *testing.T, trans raft.Transport, target *testcluster.Node) []error {
	t.Helper()
	st := server.RaftStats(target.Server)
	term, _ := strconv.ParseUint(st["term"], 10, 64)
	last, _ := strconv.ParseUint(st["last_log_index"], 10, 64)
	lastTerm, _ := strconv.ParseUint(st["last_log_term"], 10, 64)
	id, addr := raft.ServerID(target.ID()), raft.ServerAddress(target.RaftAddr())
	hdr := raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("attacker"), Addr: []byte(trans.LocalAddr())}
	evil := term + 1000
	entry := fsm.Entry{Now: time.Now().UnixMilli(), Commands: []fsm.Command{fsm.Reset{Keys: []string{"victim"}}}}.Encode()
	var errs []error
	errs = append(errs, trans.AppendEntries(id, addr, &raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: evil, PrevLogEntry: last, PrevLogTerm: lastTerm, LeaderCommitIndex: last,
	}, &raft.AppendEntriesResponse{}))
	errs = append(errs, trans.AppendEntries(id, addr, &raft.AppendEntriesRequest{
		RPCHeader: hdr, Term: evil, PrevLogEntry: last, PrevLogTerm: lastTerm, LeaderCommitIndex: last + 1,
		Entries: []*raft.Log{{Index: last + 1, Term: evil, Type: raft.LogCommand, Data: entry}},
	}, &raft.AppendEntriesResponse{}))
	errs = append(errs, trans.RequestVote(id, addr, &raft.RequestVoteRequest{
		RPCHeader: hdr, Term: evil + 1, LastLogIndex: last + 10, LastLogTerm: evil,
	}, &raft.RequestVoteResponse{}))
	errs = append(errs, trans.TimeoutNow(id, addr, &raft.TimeoutNowRequest{RPCHeader: hdr}, &raft.TimeoutNowResponse{}))
	return errs
}

// TestRaftPortRefusesStrangers is the attack: a program using
// hashicorp/raft's own TCP transport (and, against TLS, one presenting a
// certificate from another CA) sends a higher-term heartbeat, a RESET
// entry, a RequestVote and a TimeoutNow to the leader and to a follower.
// With TLS or a cluster secret every RPC fails, no node takes the
// stranger's term, and membership and state do not change. Without either
// (the control), the same heartbeat moves the target's term: the attack is
// real.
func TestRaftPortRefusesStrangers(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tls    bool
		secret string
	}{
		{"unprotected (control)", false, ""},
		{"TLS", true, ""},
		{"cluster secret", false, "s3cret"},
		{"TLS and cluster secret", true, "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testcluster.Options{ClusterSecret: tc.secret}
			var certs *testcerts.Certs
			if tc.tls {
				certs = testcerts.New(t)
				o.TLS = certs
			}
			c := testcluster.Start(t, 3, o)
			leader := c.WaitForLeader(10 * time.Second)
			if err := leader.Client().Do(ctx, "THROTTLE.ACQUIRE", "victim", 60000, 5).Err(); err != nil {
				t.Fatal(err)
			}
			testcluster.WaitFor(t, 10*time.Second, "every node to apply the victim's grant", func() bool {
				for _, n := range c.Nodes {
					if _, ok := n.Server.FSM().Keys(0)["victim"]; !ok {
						return false
					}
				}
				return true
			})
			terms := map[string]string{}
			members := map[string][]string{}
			keys := map[string]fsm.KeyState{}
			for _, n := range c.Nodes {
				terms[n.ID()] = server.RaftStats(n.Server)["term"]
				members[n.ID()] = server.RaftServers(n.Server)
				keys[n.ID()] = n.Server.FSM().Keys(0)["victim"]
			}

			plain, err := raft.NewTCPTransport("127.0.0.1:0", nil, 1, 2*time.Second, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			attackers := map[string]raft.Transport{"raft TCP transport": plain}
			if tc.tls {
				foreign := testcerts.New(t)
				cfg := foreign.ClientConfig(t, true)
				cfg.InsecureSkipVerify = true // the attacker trusts anyone
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ft := raft.NewNetworkTransport(foreignTLSLayer{Listener: ln, cfg: cfg}, 1, 2*time.Second, io.Discard)
				defer ft.Close()
				attackers["TLS with another CA's certificate"] = ft
			}

			if tc.secret == "" && !tc.tls {
				f := c.Followers()[0]
				errs := attack(t, plain, f)
				if errs[0] != nil {
					t.Fatalf("control: the unprotected heartbeat failed: %v", errs[0])
				}
				if got := server.RaftStats(f.Server)["term"]; got == terms[f.ID()] {
					t.Fatalf("control: the unprotected heartbeat left the term at %s", got)
				}
				return
			}

			for name, trans := range attackers {
				for _, target := range append([]*testcluster.Node{leader}, c.Followers()...) {
					for i, err := range attack(t, trans, target) {
						if err == nil {
							t.Errorf("%s: RPC %d to %s succeeded", name, i, target)
						}
					}
				}
			}
			// The nodes may hold an election of their own meanwhile (a
			// busy machine, under -race, can miss heartbeats), so what is
			// checked is that nothing the stranger sent took effect: every
			// RPC failed (above), no term reached the stranger's (attack:
			// 1000 above the target's), and the RESET entry did not apply.
			c.WaitForLeader(10 * time.Second)
			for _, n := range c.Nodes {
				was, _ := strconv.ParseUint(terms[n.ID()], 10, 64)
				if got, _ := strconv.ParseUint(server.RaftStats(n.Server)["term"], 10, 64); got >= was+1000 {
					t.Errorf("%s: term %d, was %d: the stranger's term was taken", n, got, was)
				}
				if got := server.RaftServers(n.Server); !slices.Equal(got, members[n.ID()]) {
					t.Errorf("%s: members %v, were %v", n, got, members[n.ID()])
				}
				if got, ok := n.Server.FSM().Keys(0)["victim"]; !ok || got != keys[n.ID()] {
					t.Errorf("%s: victim's state %+v (present %v), was %+v", n, got, ok, keys[n.ID()])
				}
			}
		})
	}
}
