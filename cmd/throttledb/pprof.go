package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// servePprof serves net/http/pprof's handlers on addr (--pprof-addr) until
// the process exits, and returns the address it listens on. The profiles
// show every key name a goroutine holds and let anyone reaching the port
// slow the node down, so bind it to loopback (127.0.0.1:6060) and reach it
// through SSH; it has no authentication of its own.
func servePprof(addr string, lg *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-addr: %w", err)
	}
	// Its own mux: importing net/http/pprof for side effects would put the
	// handlers on http.DefaultServeMux for anything else that serves it.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil {
			lg.Error("pprof server stopped", "err", err)
		}
	}()
	lg.Info("serving pprof", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	return ln.Addr(), nil
}
