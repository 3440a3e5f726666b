package glob

// maxNesting bounds the recursion a pattern may cause, as Redis bounds it:
// deeper than this, a match fails.
const maxNesting = 1000

// Match reports whether s matches pattern. It costs at most O(len(pattern)
// × len(s)): once the rest of a pattern after a `*` fails everywhere in the
// rest of the string, no longer match of an earlier `*` is tried (Redis's
// skipLongerMatches).
func Match(pattern, s string) bool {
	skip := false
	return match(pattern, s, &skip, 0)
}

// at returns p[i], or 0 past the end: the C code reads the terminating
// NUL of its strings there, and this reproduces what it then does.
func at(p string, i int) byte {
	if i < len(p) {
		return p[i]
	}
	return 0
}

func match(p, s string, skipLonger *bool, nesting int) bool {
	if nesting > maxNesting {
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && at(p, 1) == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if match(p[1:], s, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			// The rest of the pattern matches nowhere in the rest of the
			// string, so no longer match of an earlier '*' can help.
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			// j walks the set within p, which still starts at '[': the C
			// code steps back one byte when a set is left open, to the
			// '[' or '^' at worst, so p is resliced only afterwards.
			j := 1
			not := at(p, j) == '^'
			if not {
				j++
			}
			matched := false
		set:
			for {
				n := len(p) - j
				switch c := at(p, j); {
				case c == '\\' && n >= 2:
					j++
					if p[j] == s[0] {
						matched = true
					}
				case c == ']':
					break set
				case n == 0:
					j--
					break set
				case n >= 3 && p[j+1] == '-':
					lo, hi := p[j], p[j+2]
					if lo > hi {
						lo, hi = hi, lo
					}
					j += 2
					if s[0] >= lo && s[0] <= hi {
						matched = true
					}
				case c == s[0]:
					matched = true
				}
				j++
			}
			if not {
				matched = !matched
			}
			if !matched {
				return false
			}
			s = s[1:]
			p = p[j:] // at the closing ']', or the last byte of an open set
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}
