//go:build unix

package server

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockDataFile takes the exclusive lock bbolt takes on path (flock), waiting
// up to timeout, so that the checks that read the file before bbolt opens
// it never read a file another process is writing. It returns the unlock
// function, or ErrDataDirInUse. A missing file needs no lock.
func lockDataFile(path string, timeout time.Duration) (func(), error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			// Closing the descriptor releases the lock.
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, path)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
