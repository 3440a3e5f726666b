// Package glob matches strings against Redis's glob-style patterns, as
// KEYS and SCAN's MATCH do: a port of stringmatchlen in Redis's util.c
// (case-sensitive form), byte for byte.
//
// Syntax: `*` any run of bytes, `?` any one byte, `[abc]` one of a set,
// `[^abc]` one byte not in it, `[a-z]` a range (ends in either order),
// `\x` the byte x literally, inside or outside a set. Malformed patterns
// are read as Redis reads them: a `[` with no closing `]` takes the rest
// of the pattern as its set, a trailing `\` is itself.
//
// It differs from path.Match, which stops `*` at '/', reads `[!a]` as a
// negation and refuses malformed patterns. One deliberate difference from
// Redis on x86: Redis compares range ends as C chars, which are signed
// there, so a range with an end above 0x7f matches oddly; here bytes are
// unsigned, as Redis on arm64 compares them.
package glob
