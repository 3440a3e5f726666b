package server

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// raftLogger returns the logger given to hashicorp/raft and its stores and
// transport: their log calls reach lg with their level and fields as slog
// attributes (and the subsystem's name as "component"), so that text and
// JSON output, level filtering and log collectors treat Raft's lines like
// the node's own. Nothing is formatted by hclog and parsed back.
func raftLogger(lg *slog.Logger) hclog.Logger {
	return &slogHCLog{l: lg, name: "raft"}
}

// slogHCLog implements hclog.Logger on a slog.Logger.
type slogHCLog struct {
	l       *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*slogHCLog)(nil)

// slogLevel maps hclog's levels onto slog's; Trace sits below Debug.
func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (h *slogHCLog) enabled(level hclog.Level) bool {
	return h.l.Enabled(context.Background(), slogLevel(level))
}

// Log implements hclog.Logger.
func (h *slogHCLog) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off || !h.enabled(level) {
		return
	}
	attrs := make([]any, 0, 2+len(h.implied)+len(args))
	attrs = append(attrs, "component", h.name)
	attrs = appendValues(attrs, h.implied)
	attrs = appendValues(attrs, args)
	h.l.Log(context.Background(), slogLevel(level), msg, attrs...)
}

// appendValues appends hclog's key-value pairs, rendering values the way
// hclog would have: Raft passes hclog.Fmt values and types (its *Raft, its
// servers) whose meaning is their String method, which a JSON handler
// would otherwise marshal as {}.
func appendValues(dst, kvs []any) []any {
	for i, v := range kvs {
		if i%2 == 1 {
			switch x := v.(type) {
			case hclog.Format:
				if len(x) > 0 {
					if f, ok := x[0].(string); ok {
						v = fmt.Sprintf(f, x[1:]...)
					}
				}
			case error:
				v = x.Error()
			case fmt.Stringer:
				v = x.String()
			}
		}
		dst = append(dst, v)
	}
	return dst
}

// Trace implements hclog.Logger.
func (h *slogHCLog) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }

// Debug implements hclog.Logger.
func (h *slogHCLog) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }

// Info implements hclog.Logger.
func (h *slogHCLog) Info(msg string, args ...any) { h.Log(hclog.Info, msg, args...) }

// Warn implements hclog.Logger.
func (h *slogHCLog) Warn(msg string, args ...any) { h.Log(hclog.Warn, msg, args...) }

// Error implements hclog.Logger.
func (h *slogHCLog) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

// IsTrace implements hclog.Logger.
func (h *slogHCLog) IsTrace() bool { return h.enabled(hclog.Trace) }

// IsDebug implements hclog.Logger.
func (h *slogHCLog) IsDebug() bool { return h.enabled(hclog.Debug) }

// IsInfo implements hclog.Logger.
func (h *slogHCLog) IsInfo() bool { return h.enabled(hclog.Info) }

// IsWarn implements hclog.Logger.
func (h *slogHCLog) IsWarn() bool { return h.enabled(hclog.Warn) }

// IsError implements hclog.Logger.
func (h *slogHCLog) IsError() bool { return h.enabled(hclog.Error) }

// ImpliedArgs implements hclog.Logger.
func (h *slogHCLog) ImpliedArgs() []any { return h.implied }

// With implements hclog.Logger.
func (h *slogHCLog) With(args ...any) hclog.Logger {
	c := *h
	c.implied = append(append([]any(nil), h.implied...), args...)
	return &c
}

// Name implements hclog.Logger.
func (h *slogHCLog) Name() string { return h.name }

// Named implements hclog.Logger: "raft" becomes "raft.net" and so on.
func (h *slogHCLog) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

// ResetNamed implements hclog.Logger.
func (h *slogHCLog) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

// SetLevel implements hclog.Logger. The level is the slog handler's, set
// by --log-level, so this does nothing.
func (h *slogHCLog) SetLevel(hclog.Level) {}

// GetLevel implements hclog.Logger: the lowest level the handler takes.
func (h *slogHCLog) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

// StandardLogger implements hclog.Logger.
func (h *slogHCLog) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(h.l.With("component", h.name).Handler(), slog.LevelInfo)
}

// StandardWriter implements hclog.Logger.
func (h *slogHCLog) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	return h.StandardLogger(opts).Writer()
}
