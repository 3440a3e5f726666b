package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ErrMetricsAddr is returned by Start when Config.MetricsAddr cannot be
// listened on.
var ErrMetricsAddr = errors.New("cannot serve metrics")

// metricsHTTP is the HTTP listener of --metrics-addr: /metrics, /healthz
// and /readyz on a mux of its own, so nothing registered on
// http.DefaultServeMux (pprof, say) is exposed with it.
type metricsHTTP struct {
	ln  net.Listener
	srv *http.Server
}

// startMetrics listens on cfg.MetricsAddr and serves until Close. Each
// Server has its own registry: several nodes run in one test process, and
// the global one would mix them (or refuse the second registration).
func (s *Server) startMetrics() error {
	ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMetricsAddr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&nodeCollector{s: s},
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Answering at all is the promise: the process is up and serving.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if reason := s.notReadyReason(); reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, reason)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	s.metrics = &metricsHTTP{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	s.goBackground(func() {
		if err := s.metrics.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics server stopped", "err", err)
		}
	})
	s.log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

// MetricsAddr returns the address --metrics-addr is bound to, or "" when
// metrics are off.
func (s *Server) MetricsAddr() string {
	if s.metrics == nil {
		return ""
	}
	return s.metrics.ln.Addr().String()
}

// closeMetrics stops the metrics listener and its open requests.
func (s *Server) closeMetrics() {
	if s.metrics != nil {
		s.metrics.srv.Close()
	}
}

// slogPrinter passes promhttp's error lines to the node's logger.
type slogPrinter struct{ s *Server }

// Println implements promhttp.Logger.
func (p slogPrinter) Println(v ...any) { p.s.log.Warn("metrics: " + fmt.Sprint(v...)) }

// notReadyReason returns why the node is not ready to serve reads and
// writes as a cluster member, or "" when it is: it is a member of the
// cluster's configuration, knows a leader, is not still loading its log
// after a restart, has applied everything it knows to be committed, and,
// if it leads, has finished its election barrier.
func (s *Server) notReadyReason() string {
	s.drainMu.RLock()
	draining := s.draining
	s.drainMu.RUnlock()
	select {
	case <-s.stop:
		draining = true
	default:
	}
	if draining {
		// Shutdown has begun: take the node out of rotation before it stops.
		return "node is shutting down"
	}
	if !s.isMember() {
		return "not a member of the cluster configuration"
	}
	if _, id := s.raft.LeaderWithID(); id == "" {
		return "no known leader"
	}
	if s.loading() {
		return "loading the dataset (applying the log after a restart)"
	}
	rs := s.raft.Stats()
	commit, _ := strconv.ParseUint(rs["commit_index"], 10, 64)
	applied, _ := strconv.ParseUint(rs["applied_index"], 10, 64)
	if applied < commit {
		return fmt.Sprintf("applied index %d behind commit index %d", applied, commit)
	}
	if s.raft.State() == raft.Leader && !s.isReady() {
		return "leader not ready yet (applying earlier terms' entries)"
	}
	return ""
}

// isMember reports whether this node is in the latest Raft configuration.
func (s *Server) isMember() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == s.cfg.ID {
			return true
		}
	}
	return false
}

// Metric descriptions. Everything is read at scrape time from counters the
// node keeps anyway (INFO's), so metrics cost nothing on the command path.
var (
	descCommands = prometheus.NewDesc("throttledb_commands_total",
		"Commands served, by command (INFO commandstats name) and outcome: ok, or error (an error reply, or refused before it ran).",
		[]string{"command", "outcome"}, nil)
	descCommandSeconds = prometheus.NewDesc("throttledb_command_seconds_total",
		"Wall time spent serving each command, dispatch to reply (for writes: including the commit).",
		[]string{"command"}, nil)
	descGrants = prometheus.NewDesc("throttledb_throttle_grants_total",
		"Slots granted for immediate use, cluster-wide (from the replicated state).", nil, nil)
	descReservations = prometheus.NewDesc("throttledb_throttle_reservations_total",
		"Future slots reserved, cluster-wide (from the replicated state).", nil, nil)
	descDenials = prometheus.NewDesc("throttledb_throttle_denials_total",
		"Acquires refused, cluster-wide (from the replicated state).", nil, nil)
	descCommitTimeouts = prometheus.NewDesc("throttledb_raft_commit_timeouts_total",
		"Log entries this node, as leader, answered unknown (TRYAGAIN) because Raft had not committed them within the commit timeout.", nil, nil)
	descQueueTimeouts = prometheus.NewDesc("throttledb_raft_queue_timeouts_total",
		"Commands this node, as leader, refused (CLUSTERDOWN) because they waited the leader wait behind an entry Raft had not committed.", nil, nil)
	descFastDenials = prometheus.NewDesc("throttledb_throttle_fast_denials_total",
		"Acquires this node refused as leader without a log entry; not in throttledb_throttle_denials_total.", nil, nil)
	descClients = prometheus.NewDesc("throttledb_connected_clients",
		"Open client connections.", nil, nil)
	descConns = prometheus.NewDesc("throttledb_connections_received_total",
		"Client connections accepted.", nil, nil)
	descErrors = prometheus.NewDesc("throttledb_error_replies_total",
		"Error replies sent to clients.", nil, nil)
	descRaftState = prometheus.NewDesc("throttledb_raft_state",
		"1 for this node's current Raft state, 0 for the others.", []string{"state"}, nil)
	descReady = prometheus.NewDesc("throttledb_raft_leader_ready",
		"1 if this node is the leader and serves (its election barrier has applied).", nil, nil)
	descTerm = prometheus.NewDesc("throttledb_raft_term",
		"Current Raft term.", nil, nil)
	descCommit = prometheus.NewDesc("throttledb_raft_commit_index",
		"Highest log index this node knows to be committed.", nil, nil)
	descApplied = prometheus.NewDesc("throttledb_raft_applied_index",
		"Highest log index applied to this node's state machine.", nil, nil)
	descLastLog = prometheus.NewDesc("throttledb_raft_last_log_index",
		"Last index in this node's Raft log.", nil, nil)
	descSnapIndex = prometheus.NewDesc("throttledb_raft_last_snapshot_index",
		"Log index of this node's latest snapshot.", nil, nil)
	descPeers = prometheus.NewDesc("throttledb_raft_peers",
		"Other voters in the configuration this node knows.", nil, nil)
	descLastContact = prometheus.NewDesc("throttledb_raft_last_contact_seconds",
		"Seconds since a follower last heard from the leader (0 on the leader; absent if never).", nil, nil)
	descLatency = prometheus.NewDesc("throttledb_latency_seconds",
		"INFO latency's breakdown of a write: forward_gather, forward_request, proposer_queue, raft_apply, log_store, commit_wait, fsm_apply, command, reply. Quantiles are bucket upper bounds (under 3% above the true value).",
		[]string{"stage"}, nil)
	descLatencyMax = prometheus.NewDesc("throttledb_latency_max_seconds",
		"Largest duration recorded per stage of INFO latency.", []string{"stage"}, nil)
)

// raftStates are the states throttledb_raft_state reports, lower-cased as
// INFO raft_state shows them.
var raftStates = []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown}

// nodeCollector reads a Server's counters when scraped.
type nodeCollector struct{ s *Server }

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCommands, descCommandSeconds, descGrants, descReservations,
		descDenials, descFastDenials, descCommitTimeouts, descQueueTimeouts, descClients, descConns, descErrors, descRaftState, descReady, descTerm, descCommit,
		descApplied, descLastLog, descSnapIndex, descPeers, descLastContact, descLatency, descLatencyMax} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Every known command, called or not: series that appear only once a
	// command is first used would make rate() miss its first calls.
	for name, cs := range s.stats.cmds {
		calls, failed, rejected := cs.calls.Load(), cs.failed.Load(), cs.rejected.Load()
		counter(descCommands, float64(calls-failed), strings.ToLower(name), "ok")
		counter(descCommands, float64(failed+rejected), strings.ToLower(name), "error")
		counter(descCommandSeconds, float64(cs.usec.Load())/1e6, strings.ToLower(name))
	}
	st := s.fsm.Stats()
	counter(descGrants, float64(st.Grants))
	counter(descReservations, float64(st.Reservations))
	counter(descDenials, float64(st.Denials))
	counter(descFastDenials, float64(s.deny.count.Load()))
	counter(descCommitTimeouts, float64(s.prop.commitTimeouts.Load()))
	counter(descQueueTimeouts, float64(s.prop.queueTimeouts.Load()))
	gauge(descClients, float64(s.clients.Load()))
	counter(descConns, float64(s.connsTotal.Load()))
	counter(descErrors, float64(s.stats.errTotal.Load()))

	state := s.raft.State()
	for _, rs := range raftStates {
		v := 0.0
		if rs == state {
			v = 1
		}
		gauge(descRaftState, v, strings.ToLower(rs.String()))
	}
	ready := 0.0
	if s.isReady() {
		ready = 1
	}
	gauge(descReady, ready)
	rs := s.raft.Stats()
	for _, g := range []struct {
		d   *prometheus.Desc
		key string
	}{{descTerm, "term"}, {descCommit, "commit_index"}, {descApplied, "applied_index"},
		{descLastLog, "last_log_index"}, {descSnapIndex, "last_snapshot_index"}, {descPeers, "num_peers"}} {
		if v, err := strconv.ParseUint(rs[g.key], 10, 64); err == nil {
			gauge(g.d, float64(v))
		}
	}
	// Raft reports "0" on the leader, "never" before any contact, and a
	// time.Duration string otherwise.
	if d, err := time.ParseDuration(rs["last_contact"]); err == nil {
		gauge(descLastContact, d.Seconds())
	}

	for _, h := range s.latencyStages() {
		st := h.h.Stats()
		// The histogram keeps the mean, not the sum: count*mean is the
		// sum to within a nanosecond per observation.
		sum := st.Mean.Seconds() * float64(st.Count)
		ch <- prometheus.MustNewConstSummary(descLatency, st.Count, sum, map[float64]float64{
			0.5: st.P50.Seconds(), 0.99: st.P99.Seconds(), 0.999: st.P999.Seconds(),
		}, h.name)
		gauge(descLatencyMax, st.Max.Seconds(), h.name)
	}
}
