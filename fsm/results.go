package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// resultsVersion opens every encoded result list, so that a node never
// misreads results from a newer version. Version 2 adds each result's
// CellResult; it is written only for lists that hold one, so a list
// without CL.THROTTLE results stays readable by a version-1 node.
const (
	resultsVersion     = 1
	resultsVersionCell = 2
)

// resultErrors numbers the errors a Result may carry, so that results can
// travel between nodes: a follower that forwarded commands to the leader
// writes their replies itself, from the same Results the leader would
// have. Codes are only ever added.
var resultErrors = []error{
	nil,                // 0: no error
	ErrInvalidKey,      // 1
	ErrInvalidInterval, // 2
	ErrInvalidMax,      // 3
	ErrInvalidSlop,     // 4
	ErrOverflow,        // 5
	ErrWrongType,       // 6
	ErrInvalidCell,     // 7
	ErrInvalidCost,     // 8
	ErrInvalidToken,    // 9
	ErrKeyLimit,        // 10
}

// AppendResults appends the wire form of rs to dst:
//
//	[version][uvarint n] n × ([error code][granted][varint wait, valid,
//	expires, pending, count]
//	(version 2) [limited][varint limit, remaining, retry after, reset after])
//
// A Result whose Err is not one of this package's command errors cannot be
// encoded: Apply never produces one.
func AppendResults(dst []byte, rs []Result) ([]byte, error) {
	version := byte(resultsVersion)
	for _, r := range rs {
		if r.Cell != (CellResult{}) {
			version = resultsVersionCell
		}
	}
	dst = append(dst, version)
	dst = binary.AppendUvarint(dst, uint64(len(rs)))
	for _, r := range rs {
		code := -1
		for i, e := range resultErrors {
			if r.Err == e || (e != nil && errors.Is(r.Err, e)) {
				code = i
				break
			}
		}
		if code < 0 {
			return nil, fmt.Errorf("result error %v: %w", r.Err, ErrUnknownType)
		}
		granted := byte(0)
		if r.Permit.Granted {
			granted = 1
		}
		dst = append(dst, byte(code), granted)
		for _, v := range []int64{r.Permit.WaitMs, r.Permit.ValidAt, r.Permit.ExpiresAt, r.Permit.Pending, r.Count} {
			dst = binary.AppendVarint(dst, v)
		}
		if version == resultsVersionCell {
			limited := byte(0)
			if r.Cell.Limited {
				limited = 1
			}
			dst = append(dst, limited)
			for _, v := range []int64{r.Cell.Limit, r.Cell.Remaining, r.Cell.RetryAfter, r.Cell.ResetAfter} {
				dst = binary.AppendVarint(dst, v)
			}
		}
	}
	return dst, nil
}

// DecodeResults parses results written by AppendResults. Errors wrap
// ErrCorrupt or ErrUnknownType.
func DecodeResults(data []byte) ([]Result, error) {
	return DecodeResultsTo(nil, data)
}

// DecodeResultsTo is DecodeResults appending the results to dst, which it
// returns, for a caller that decodes many short lists at once (a follower,
// the outcomes of a forwarding reply) into one array. On an error dst is
// returned unchanged; with a nil dst, nil.
func DecodeResultsTo(dst []Result, data []byte) ([]Result, error) {
	if len(data) < 1 {
		return dst, fmt.Errorf("results of 0 bytes: %w", ErrCorrupt)
	}
	version := data[0]
	if version != resultsVersion && version != resultsVersionCell {
		return dst, fmt.Errorf("results version %d: %w", data[0], ErrUnknownType)
	}
	d := decoder{buf: data[1:]}
	n := d.count()
	// Each result takes at least 7 bytes, so this never allocates more
	// than the input warrants.
	rs := dst
	if n > 0 && rs == nil {
		rs = make([]Result, 0, min(n, uint64(len(d.buf))/7))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		var r Result
		code := int(d.byte())
		switch {
		case d.err != nil:
		case code >= len(resultErrors):
			d.err = fmt.Errorf("result error code %d: %w", code, ErrUnknownType)
		default:
			r.Err = resultErrors[code]
		}
		switch g := d.byte(); {
		case d.err != nil:
		case g > 1:
			d.fail("granted flag %d", g)
		default:
			r.Permit.Granted = g == 1
		}
		r.Permit.WaitMs, r.Permit.ValidAt, r.Permit.ExpiresAt = d.varint(), d.varint(), d.varint()
		r.Permit.Pending, r.Count = d.varint(), d.varint()
		if version == resultsVersionCell {
			switch l := d.byte(); {
			case d.err != nil:
			case l > 1:
				d.fail("limited flag %d", l)
			default:
				r.Cell.Limited = l == 1
			}
			r.Cell.Limit, r.Cell.Remaining = d.varint(), d.varint()
			r.Cell.RetryAfter, r.Cell.ResetAfter = d.varint(), d.varint()
		}
		rs = append(rs, r)
	}
	if d.err == nil && len(d.buf) != 0 {
		d.fail("%d trailing bytes", len(d.buf))
	}
	if d.err != nil {
		return dst, d.err
	}
	return rs, nil
}
