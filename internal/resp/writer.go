package resp

import "strconv"

// AppendCommand appends args encoded as a RESP array of bulk strings (the
// form in which clients send commands) to dst and returns the extended
// slice.
func AppendCommand(dst []byte, args ...[]byte) []byte { return appendCommand(dst, args) }

// AppendCommandStrings is like [AppendCommand] but takes string arguments.
func AppendCommandStrings(dst []byte, args ...string) []byte { return appendCommand(dst, args) }

func appendCommand[T ~string | ~[]byte](dst []byte, args []T) []byte {
	dst = appendHeader(dst, '*', len(args))
	for _, a := range args {
		dst = appendHeader(dst, '$', len(a))
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

func appendHeader(dst []byte, typ byte, n int) []byte {
	dst = append(dst, typ)
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '\r', '\n')
}
