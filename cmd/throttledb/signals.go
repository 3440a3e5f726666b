package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// watchSignalsWhileStopping handles the signals that arrive while the node
// shuts down, as Redis does: a second SIGINT (Ctrl-C again) ends the
// process at once with status 1 ("You insist... exiting now."), so that an
// operator can end a stop that waits on a stalled peer or disk; nothing
// acknowledged is lost, since every grant was fsynced before it was
// answered. Another SIGTERM changes nothing: the stop carries on. It
// returns when sigs is closed.
func watchSignalsWhileStopping(sigs <-chan os.Signal, lg *slog.Logger, exit func(int)) {
	for sig := range sigs {
		if sig == os.Interrupt {
			lg.Warn("You insist... exiting now.")
			exit(1)
			return
		}
		lg.Warn("received " + sig.String() + " while shutting down: the stop carries on (a second SIGINT ends the process at once)")
	}
}

// notifyWhileStopping starts watchSignalsWhileStopping for SIGINT and
// SIGTERM. Called before the first signal's handler is released, so no
// signal falls through to Go's default (an immediate exit) meanwhile.
func notifyWhileStopping(lg *slog.Logger) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go watchSignalsWhileStopping(sigs, lg, os.Exit)
}
