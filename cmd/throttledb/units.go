package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/throttledb/throttledb/server"
)

// memoryFlag is a flag.Value holding a size in bytes, with Redis's units
// (server.ParseMemory).
type memoryFlag struct{ p *int64 }

func (m memoryFlag) String() string {
	if m.p == nil {
		return "0"
	}
	return strconv.FormatInt(*m.p, 10)
}

func (m memoryFlag) Set(s string) error {
	n, err := server.ParseMemory(s)
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
