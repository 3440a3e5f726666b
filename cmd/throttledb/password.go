package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// envPassword names the environment variable that may carry the password
// instead of a flag. A command line is visible to every user of the
// machine (ps, /proc/<pid>/cmdline); a process's environment only to its
// owner and root. The node and `throttledb cluster` read it as the
// password to require, the client tools (backup, restore, bench,
// simulate) as the password to send.
const envPassword = "THROTTLEDB_PASSWORD"

// maxPasswordFileLine bounds the first line of a password file, so that a
// wrong path (a log, a device) is reported instead of read whole.
const maxPasswordFileLine = 64 << 10

var (
	// errPasswordConflict is returned when the password is given more than
	// one way (flag, file, environment): which one was meant is a guess
	// too dangerous to make.
	errPasswordConflict = errors.New("the password is given more than one way")
	// errPasswordFile is returned when a password file cannot be read, or
	// its first line is empty or too long.
	errPasswordFile = errors.New("bad password file")
)

// passwordSources are the ways a command can be given a password. A source
// counts when it gives a non-empty password, except the file: a file
// given must hold one (an empty first line is an error, not "no
// password", so a mistake never leaves a node open).
type passwordSources struct {
	flagName string // the flag's name, with dashes: "--requirepass" or "--password"
	flag     string // its value
	fileFlag string // "--requirepass-file", or "" for commands without one
	file     string // its value: a path
	env      string // the value of THROTTLEDB_PASSWORD
}

// resolve returns the one password given, "" if none, or an error naming
// the sources when more than one is set. The warnings are for the user:
// a password on the command line, a password file others can read.
func (p passwordSources) resolve() (pw string, warnings []string, err error) {
	var set []string
	if p.flag != "" {
		set = append(set, p.flagName)
		pw = p.flag
	}
	if p.file != "" {
		set = append(set, p.fileFlag)
	}
	if p.env != "" {
		set = append(set, envPassword)
		pw = p.env
	}
	if len(set) > 1 {
		return "", nil, fmt.Errorf("%w: %s are all set; use one", errPasswordConflict, strings.Join(set, ", "))
	}
	switch {
	case p.file != "":
		return readPasswordFile(p.fileFlag, p.file)
	case p.flag != "":
		alt := envPassword
		if p.fileFlag != "" {
			alt = p.fileFlag + " or " + envPassword
		}
		warnings = append(warnings, fmt.Sprintf("%s puts the password on the command line, where every user of this machine can read it (ps); %s keeps it out of sight", p.flagName, alt))
	}
	return pw, warnings, nil
}

// readPasswordFile returns the first line of the file at path, without its
// line ending (\n or \r\n); nothing else is trimmed, since spaces may be
// part of a password. It warns when a regular file's mode lets group or
// others read it. That is a warning, not a refusal: secrets that
// orchestrators mount (Kubernetes, Docker) are often 0644 inside a
// container no one else can enter, and refusing them would push users
// back to the flag, which every local user can read.
func readPasswordFile(flagName, path string) (string, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s: %w", errPasswordFile, flagName, err)
	}
	defer f.Close()
	var warnings []string
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		warnings = append(warnings, fmt.Sprintf("%s %s is readable by group or others (mode %04o); chmod 600 it", flagName, path, fi.Mode().Perm()))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPasswordFileLine+2))
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s: %w", errPasswordFile, flagName, err)
	}
	line, err := passwordLine(data)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s %s: %w", errPasswordFile, flagName, path, err)
	}
	return line, warnings, nil
}

// passwordLine returns the first line of data without its line ending, or
// an error if it is empty or longer than maxPasswordFileLine.
func passwordLine(data []byte) (string, error) {
	line, _, found := strings.Cut(string(data), "\n")
	line = strings.TrimSuffix(line, "\r")
	switch {
	case len(line) > maxPasswordFileLine || (!found && len(data) > maxPasswordFileLine):
		return "", fmt.Errorf("first line longer than %d bytes", maxPasswordFileLine)
	case line == "":
		return "", errors.New("the first line is empty")
	}
	return line, nil
}

// clientPassword resolves the password a client tool sends: its
// --password flag or THROTTLEDB_PASSWORD (not both). Warnings go to
// stderr. With remote false (the tool runs its own embedded node, which has
// no password) the environment is ignored, so an exported variable does
// not break a local run; the flag is passed through for the tool's own
// checks.
func clientPassword(flag string, remote bool) (string, error) {
	env := os.Getenv(envPassword)
	if !remote {
		env = ""
	}
	pw, warnings, err := passwordSources{flagName: "--password", flag: flag, env: env}.resolve()
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	return pw, err
}
