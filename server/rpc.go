package server

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/throttledb/throttledb/fsm"
)

// The forwarding RPC. A follower sends the leader `RAFT.PROPOSE <request>`
// on a node session; the leader proposes the request's proposals, in order,
// and answers with one bulk string, `<reply>`:
//
//	request, version 1:
//	         [1][uvarint n] n × ([uvarint len][fsm entry of the
//	         proposal's commands])
//	request, version 2 (rpcVersionEarly):
//	         [2][uvarint n] n × ([flags][uvarint len][fsm entry]), where
//	         flag bit 0 (rpcEarly) says the leader may answer the proposal
//	         without the log if the log would certainly deny it (see
//	         denier.denyForwarded); other bits are refused
//	reply:   [1][uvarint n] n × ([status] and, for statusOK,
//	         [uvarint len][fsm results]; for statusError, [uvarint
//	         len][the RESP error text])
//
// A proposal's commands stay together in one log entry (a transaction).
// The follower writes each client's reply itself, from the results, with
// the code the leader uses for its own clients.
//
// Versions across a rolling upgrade: a leader decodes both request
// versions. A node from before version 2 refuses a version 2 request as a
// whole, before proposing anything ("ERR malformed forwarding RPC: version
// 2"), so a follower asks each leader connection once, when it opens it,
// with an empty version 2 request (forwarder.probe), and sends version 1
// to a leader that refuses it.
const (
	rpcVersion      = 1 // of replies, and of requests without marks
	rpcVersionEarly = 2 // of requests with a flags byte per proposal
)

// Flags of a proposal in a version 2 request. Only ever added, with a new
// request version (a leader refuses bits it does not know).
const rpcEarly = 1 << 0

// Per-proposal statuses of a RAFT.PROPOSE reply. Only ever added.
const (
	statusOK      = 0 // committed: results follow
	statusNotRun  = 1 // certainly not in the log (no longer leader, stopping): route again
	statusUnknown = 2 // may or may not have been committed
	statusError   = 3 // refused with an error reply: text follows
	statusOOM     = 4 // refused by --maxmemory (ErrOOM)
)

// ErrBadRPC is returned (wrapped) for a RAFT.PROPOSE request or reply that
// cannot be decoded.
var ErrBadRPC = errors.New("malformed forwarding RPC")

// maxRPCProposals bounds the proposals of one request, so that a request
// cannot make the leader queue without limit.
const maxRPCProposals = 4096

// appendProposeRequest appends the request for props to dst in version v
// (rpcVersion or rpcVersionEarly). For version 2, early[i] (nil: none)
// marks props[i] as one the leader may decide early; version 1 carries no
// marks.
func appendProposeRequest(dst []byte, v byte, props [][]fsm.Command, early []bool) []byte {
	dst = append(dst, v)
	dst = binary.AppendUvarint(dst, uint64(len(props)))
	for i, cmds := range props {
		if v == rpcVersionEarly {
			var flags byte
			if early != nil && early[i] {
				flags |= rpcEarly
			}
			dst = append(dst, flags)
		}
		// The entry is encoded in place and moved up past its length,
		// rather than encoded into a buffer of its own and copied: no
		// allocation per proposal once dst has room (the forwarder
		// reuses it).
		start := len(dst)
		dst = fsm.Entry{Commands: cmds}.AppendEncode(dst)
		n := len(dst) - start
		var hdr [binary.MaxVarintLen64]byte
		k := binary.PutUvarint(hdr[:], uint64(n))
		dst = append(dst, hdr[:k]...)
		copy(dst[start+k:], dst[start:start+n])
		copy(dst[start:], hdr[:k])
	}
	return dst
}

// decodeProposeRequest parses a request written by appendProposeRequest
// in either version: the proposals, and which of them are marked early
// (nil when none is). The request is copied once, into a string its
// commands' keys are cut from, and the proposals' commands share one
// array (fsm.DecodeEntryIn): a forwarded command costs the leader no
// allocation for its key or its proposal's slice.
func decodeProposeRequest(b []byte) ([][]fsm.Command, []bool, error) {
	src := string(b)
	r := rpcReader{b: b}
	v := r.byte()
	if r.err == nil && v != rpcVersion && v != rpcVersionEarly {
		r.fail(fmt.Sprintf("version %d", v))
	}
	n := r.count(maxRPCProposals)
	props := make([][]fsm.Command, 0, n)
	cmds := make([]fsm.Command, 0, n) // nearly every proposal is one command
	var early []bool
	for i := 0; i < n && r.err == nil; i++ {
		if v == rpcVersionEarly {
			switch flags := r.byte(); {
			case r.err == nil && flags&^rpcEarly != 0:
				r.fail(fmt.Sprintf("proposal %d has flags %#x", i, flags))
			case flags&rpcEarly != 0:
				if early == nil {
					early = make([]bool, n)
				}
				early[i] = true
			}
		}
		blob := r.blob()
		off := len(b) - len(r.b) - len(blob)
		var e fsm.Entry
		var err error
		e, cmds, err = fsm.DecodeEntryIn(cmds, src[off:off+len(blob)])
		if r.err == nil && err != nil {
			r.err = fmt.Errorf("%w: proposal %d: %w", ErrBadRPC, i, err)
		}
		if r.err == nil && len(e.Commands) == 0 {
			r.err = fmt.Errorf("%w: proposal %d is empty", ErrBadRPC, i)
		}
		props = append(props, e.Commands)
	}
	if err := r.end(); err != nil {
		return nil, nil, err
	}
	return props, early, nil
}

// rpcOutcome is what became of one forwarded proposal.
type rpcOutcome struct {
	res []fsm.Result
	err error
}

// appendProposeReply appends the reply for outs to dst. An error is sent
// by meaning: route again (ErrNotLeader, ErrShuttingDown, ErrNoLeader: the
// leader never logged it), unknown (ErrOutcomeUnknown), or the text of
// its RESP error.
func appendProposeReply(dst []byte, outs []rpcOutcome) ([]byte, error) {
	dst = append(dst, rpcVersion)
	dst = binary.AppendUvarint(dst, uint64(len(outs)))
	var res []byte
	for _, o := range outs {
		switch {
		case o.err == nil:
			var err error
			if res, err = fsm.AppendResults(res[:0], o.res); err != nil {
				return nil, err
			}
			dst = append(dst, statusOK)
			dst = binary.AppendUvarint(dst, uint64(len(res)))
			dst = append(dst, res...)
		case errors.Is(o.err, ErrNotLeader), errors.Is(o.err, ErrShuttingDown), errors.Is(o.err, ErrNoLeader):
			dst = append(dst, statusNotRun)
		case errors.Is(o.err, ErrOutcomeUnknown):
			dst = append(dst, statusUnknown)
		case errors.Is(o.err, ErrOOM):
			dst = append(dst, statusOOM)
		default:
			text := errorText(o.err)
			dst = append(dst, statusError)
			dst = binary.AppendUvarint(dst, uint64(len(text)))
			dst = append(dst, text...)
		}
	}
	return dst, nil
}

// remoteError is an error reply the leader gave for a forwarded proposal;
// errorText passes its text on unchanged.
type remoteError string

func (e remoteError) Error() string { return string(e) }

// decodeProposeReply parses a reply to a request of n proposals.
func decodeProposeReply(b []byte, n int) ([]rpcOutcome, error) {
	r := rpcReader{b: b}
	r.version()
	if got := r.count(maxRPCProposals); r.err == nil && got != n {
		r.err = fmt.Errorf("%w: %d outcomes for %d proposals", ErrBadRPC, got, n)
	}
	outs := make([]rpcOutcome, 0, n)
	all := make([]fsm.Result, 0, n) // every outcome's results: nearly always one each
	for i := 0; i < n && r.err == nil; i++ {
		var o rpcOutcome
		switch st := r.byte(); st {
		case statusOK:
			start := len(all)
			var err error
			all, err = fsm.DecodeResultsTo(all, r.blob())
			if r.err == nil && err != nil {
				r.err = fmt.Errorf("%w: outcome %d: %w", ErrBadRPC, i, err)
			}
			if len(all) > start {
				o.res = all[start:len(all):len(all)]
			}
		case statusNotRun:
			o.err = fmt.Errorf("%w: the leader did not run it", ErrNotLeader)
		case statusUnknown:
			o.err = ErrOutcomeUnknown
		case statusError:
			o.err = remoteError(r.blob())
		case statusOOM:
			o.err = ErrOOM
		default:
			if r.err == nil {
				r.err = fmt.Errorf("%w: outcome %d has status %d", ErrBadRPC, i, st)
			}
		}
		outs = append(outs, o)
	}
	return outs, r.end()
}

// rpcReader reads the RPC's fields, keeping the first error.
type rpcReader struct {
	b   []byte
	err error
}

func (r *rpcReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrBadRPC, what)
	}
}

func (r *rpcReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *rpcReader) version() {
	if v := r.byte(); r.err == nil && v != rpcVersion {
		r.fail(fmt.Sprintf("version %d", v))
	}
}

func (r *rpcReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[k:]
	return v
}

// count reads a count of at most limit elements, each of which takes at
// least a byte.
func (r *rpcReader) count(limit int) int {
	n := r.uvarint()
	if r.err == nil && (n > uint64(limit) || n > uint64(len(r.b))) {
		r.fail(fmt.Sprintf("count %d", n))
		return 0
	}
	return int(n)
}

func (r *rpcReader) blob() []byte {
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail(fmt.Sprintf("blob of %d bytes, %d left", n, len(r.b)))
	}
	if r.err != nil {
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *rpcReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail(fmt.Sprintf("%d trailing bytes", len(r.b)))
	}
	return r.err
}
