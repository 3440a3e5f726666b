package server

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
	"github.com/throttledb/throttledb/fsm"
)

var (
	// ErrNoLeader is returned when no leader is known, or the leader cannot
	// be reached, within Config.LeaderWait. Clients see CLUSTERDOWN.
	ErrNoLeader = errors.New("no leader")
	// ErrNotLeader is returned when a write reached a node that is not the
	// leader and Raft rejected it before appending it to the log, so it is
	// safe to send it to the leader instead.
	ErrNotLeader = errors.New("not the leader")
	// ErrOutcomeUnknown is returned when Raft cannot say whether a write was
	// committed (leadership was lost after the entry was appended, or it
	// was not committed within Config.ApplyTimeout). The client is told
	// so; it is never told it got a grant it may not have.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrCommitTimeout is wrapped with ErrOutcomeUnknown when a write was
	// handed to Raft but not committed within Config.ApplyTimeout (a
	// majority's log writes stalled: the leader keeps its lease and its
	// entries wait), and with ErrNoLeader when a write waited
	// Config.LeaderWait behind such entries without being handed to Raft
	// at all.
	ErrCommitTimeout = errors.New("commit timed out")
	// ErrShuttingDown is returned when the node is stopping.
	ErrShuttingDown = errors.New("node is shutting down")
	// ErrDataDirInUse is returned by Start when another process holds the
	// data directory's Raft log open.
	ErrDataDirInUse = errors.New("data directory is in use by another process")
	// ErrInvalidBackup is returned when RAFT.RESTORE is given data that is
	// not a throttledb backup image (or one from a newer version), or an
	// image whose content fsm.ValidateBackup refuses (fsm.ErrInvalidImage).
	// Nothing is changed.
	ErrInvalidBackup = errors.New("invalid backup")
)

// classifyApplyErr maps an error from a Raft future to ErrNotLeader when the
// entry certainly never entered the log, and to ErrOutcomeUnknown otherwise.
func classifyApplyErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipTransferInProgress),
		errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	default:
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
}

// Error replies in Redis's words.
const (
	msgSyntax      = "ERR syntax error"
	msgNotInteger  = "ERR value is not an integer or out of range"
	msgNoAuth      = "NOAUTH Authentication required."
	msgWrongPass   = "WRONGPASS invalid username-password pair or user is disabled."
	msgNoPassword  = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	msgNoLeader    = "CLUSTERDOWN no leader"
	msgDBIndex     = "ERR DB index is out of range"
	msgNoProto     = "NOPROTO unsupported protocol version"
	msgWrongType   = "WRONGTYPE Operation against a key holding the wrong kind of value"
	msgUnknownFate = "TRYAGAIN outcome unknown: leadership changed or the commit timed out before the write was confirmed; it may or may not have been applied"
	// msgKeyLimit follows Redis's "ERR max number of clients reached".
	msgKeyLimit = "ERR max number of keys reached"
)

func wrongArity(name string) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", name)
}

// errorText translates an error to the text of a RESP error reply.
func errorText(err error) string {
	var remote remoteError
	var proto redisError
	switch {
	case errors.As(err, &remote):
		return string(remote)
	case errors.As(err, &proto):
		return string(proto)
	case errors.Is(err, fsm.ErrInvalidKey):
		return fmt.Sprintf("ERR invalid key: keys must be 1 to %d bytes", fsm.MaxKeyLen)
	case errors.Is(err, fsm.ErrInvalidInterval):
		return "ERR interval must be a positive integer (milliseconds)"
	case errors.Is(err, fsm.ErrInvalidMax):
		return "ERR max must be zero or a positive integer"
	case errors.Is(err, fsm.ErrInvalidSlop):
		return "ERR SLOP must be zero or a positive integer (milliseconds)"
	case errors.Is(err, fsm.ErrWrongType):
		return msgWrongType
	case errors.Is(err, fsm.ErrInvalidCell):
		return "ERR " + oneLine(causeOf(err, fsm.ErrInvalidCell))
	case errors.Is(err, fsm.ErrInvalidCost):
		return "ERR COST must be zero or a positive integer, at most max+1"
	case errors.Is(err, fsm.ErrInvalidToken):
		return fmt.Sprintf("ERR ID must be 1 to %d bytes", fsm.MaxTokenLen)
	case errors.Is(err, fsm.ErrOverflow):
		return "ERR interval, max, SLOP or COST too large: the slot time would overflow int64 milliseconds"
	case errors.Is(err, fsm.ErrKeyLimit):
		return msgKeyLimit
	case errors.Is(err, ErrNoLeader):
		return msgNoLeader
	case errors.Is(err, ErrNotLeader):
		return msgNotLeader
	case errors.Is(err, ErrOutcomeUnknown):
		return msgUnknownFate
	case errors.Is(err, errShutdownFailed):
		return msgShutdownFailed
	case errors.Is(err, ErrShuttingDown):
		return "CLUSTERDOWN node is shutting down"
	case errors.Is(err, ErrOOM):
		return msgOOM
	case errors.Is(err, fsm.ErrInvalidNode) && !errors.Is(err, ErrInvalidBackup):
		return "ERR " + oneLine(err.Error())
	case errors.Is(err, ErrInvalidBackup) && errors.Is(err, fsm.ErrInvalidImage):
		return "ERR invalid backup: " + oneLine(causeOf(err, fsm.ErrInvalidImage))
	case errors.Is(err, ErrInvalidBackup) && (errors.Is(err, fsm.ErrCorrupt) || errors.Is(err, fsm.ErrUnknownType)):
		return "ERR invalid backup: not a throttledb backup image, or from a newer version (" + oneLine(err.Error()) + ")"
	default:
		return "ERR " + err.Error()
	}
}

// causeOf returns the text of the error wrapped alongside sentinel in err's
// chain (by fmt.Errorf("%w: %w", sentinel, cause)), so that a reply can say
// what is wrong without repeating the sentinel's own words; err's whole
// text if there is no such pair.
func causeOf(err, sentinel error) string {
	for e := err; e != nil; {
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			for i, w := range errs {
				if w == sentinel {
					var parts []string
					for j, other := range errs {
						if j != i {
							parts = append(parts, other.Error())
						}
					}
					return strings.Join(parts, ": ")
				}
			}
			// Follow the branch that leads to the sentinel.
			e = nil
			for _, w := range errs {
				if errors.Is(w, sentinel) {
					e = w
					break
				}
			}
		case interface{ Unwrap() error }:
			e = u.Unwrap()
		default:
			e = nil
		}
	}
	return err.Error()
}

// oneLine keeps line breaks out of a one-line error reply.
func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
