package main

import (
	"fmt"
	"strconv"
	"strings"
)

// memoryUnits are the suffixes Redis's configuration accepts for sizes:
// "1k" is 1000 bytes, "1kb" is 1024.
var memoryUnits = []struct {
	suffix string
	mult   int64
}{
	{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10},
	{"g", 1000 * 1000 * 1000}, {"m", 1000 * 1000}, {"k", 1000}, {"b", 1},
}

// parseMemory parses a size as Redis's configuration does: a non-negative
// integer with an optional unit (b, k, kb, m, mb, g, gb; any case).
func parseMemory(s string) (int64, error) {
	num, mult := strings.ToLower(strings.TrimSpace(s)), int64(1)
	for _, u := range memoryUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is not a size (an integer with an optional unit: k, kb, m, mb, g, gb)", s)
	}
	return n * mult, nil
}

// memoryFlag is a flag.Value holding a size in bytes.
type memoryFlag struct{ p *int64 }

func (m memoryFlag) String() string {
	if m.p == nil {
		return "0"
	}
	return strconv.FormatInt(*m.p, 10)
}

func (m memoryFlag) Set(s string) error {
	n, err := parseMemory(s)
	if err != nil {
		return err
	}
	*m.p = n
	return nil
}

// yesNoFlag is a flag.Value for Redis's yes/no settings.
type yesNoFlag struct{ p *bool }

func (y yesNoFlag) String() string {
	if y.p != nil && *y.p {
		return "yes"
	}
	return "no"
}

func (y yesNoFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "yes":
		*y.p = true
	case "no":
		*y.p = false
	default:
		return fmt.Errorf("argument must be 'yes' or 'no'")
	}
	return nil
}
