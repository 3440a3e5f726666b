package fsm

import "errors"

// Validation errors. The server validates commands with the same functions
// before proposing them, so these normally reach the log only through a buggy
// or hostile proposer; Apply then reports them in the command's Result and
// changes nothing.
var (
	// ErrInvalidKey is returned when a key is empty or longer than MaxKeyLen.
	ErrInvalidKey = errors.New("invalid key")
	// ErrInvalidInterval is returned when an interval is less than 1 ms.
	ErrInvalidInterval = errors.New("invalid interval")
	// ErrInvalidMax is returned when max is negative.
	ErrInvalidMax = errors.New("invalid max")
	// ErrInvalidSlop is returned when slop is negative.
	ErrInvalidSlop = errors.New("invalid slop")
	// ErrInvalidCost is returned when a cost (COST) is negative or larger
	// than max+1: a call may hold at most max slots in the future after it
	// is granted, and one of cost n holds at least n-1, so it could never
	// be granted.
	ErrInvalidCost = errors.New("invalid cost")
	// ErrInvalidToken is returned when an idempotency token (ID) is longer
	// than MaxTokenLen bytes (the server also refuses an empty one).
	ErrInvalidToken = errors.New("invalid token")
	// ErrOverflow is returned when a computation on the arguments would
	// overflow int64; nothing is changed.
	ErrOverflow = errors.New("arithmetic overflow")
	// ErrCorrupt is returned when an entry or snapshot cannot be decoded.
	ErrCorrupt = errors.New("corrupt encoding")
	// ErrUnknownType is returned when an entry or command type, or a version,
	// is one this build does not know (written by a newer version).
	ErrUnknownType = errors.New("unknown type or version")
	// ErrInvalidImage is returned when a snapshot or backup image decodes
	// but holds state no sequence of valid commands could have produced (a
	// negative or absurd clock, a non-positive interval, a slot whose
	// expiry overflows, a duplicate key, a bad member entry), or, for
	// ValidateBackup, a clock too far ahead of the cluster's. It is wrapped
	// together with a cause that names the offending key or member.
	ErrInvalidImage = errors.New("invalid image")
	// ErrWrongType is returned when a command meets a key of the other
	// kind: CL.THROTTLE on a key made by THROTTLE.ACQUIRE, or the other
	// way round. Nothing is changed.
	ErrWrongType = errors.New("key holds the wrong kind of value")
	// ErrInvalidCell is returned when a CL.THROTTLE argument is negative,
	// its rate is zero (count_per_period or period 0, or more than one
	// event per nanosecond), or its arithmetic would overflow int64
	// nanoseconds. It is wrapped together with a cause that names the
	// argument.
	ErrInvalidCell = errors.New("invalid CL.THROTTLE argument")
	// ErrKeyLimit is returned when a command would create a key while the
	// node holds as many keys as its hash table's ids can address
	// (134,217,727: see README "Memory"). Nothing is changed; commands on
	// keys already held still work. Every replica holds the same keys, so
	// every replica refuses alike.
	ErrKeyLimit = errors.New("key limit reached")
	// ErrInvalidNode is returned when a member ID or address is empty, too
	// long, or not host:port (see ValidateNode).
	ErrInvalidNode = errors.New("invalid member")
)
