package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/throttledb/throttledb/client"
)

func init() {
	subcommands["backup"] = runBackup
	subcommands["restore"] = runRestore
}

// backupFlags are the flags backup and restore share: where the cluster is
// and the file.
type backupFlags struct {
	addrs, password, file string
	timeout               time.Duration
	tls                   clientTLSFlags
}

func parseBackupFlags(name, fileUsage string, args []string) (*backupFlags, *client.Client, error) {
	var f backupFlags
	fs := flag.NewFlagSet("throttledb "+name, flag.ContinueOnError)
	fs.StringVar(&f.addrs, "addr", "127.0.0.1:6380", "comma-separated RESP addresses of cluster nodes (any node works)")
	fs.StringVar(&f.password, "password", "", "password of nodes started with --requirepass (or set "+envPassword+", which ps does not show)")
	fs.StringVar(&f.file, "file", "", fileUsage)
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the cluster")
	f.tls.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	if f.file == "" {
		return nil, nil, fmt.Errorf("%s: --file is required", name)
	}
	pw, err := clientPassword(f.password, true)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	tlsCfg, err := f.tls.config()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	c, err := client.New(client.Options{Addrs: strings.Split(f.addrs, ","), Password: pw, TLSConfig: tlsCfg})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return &f, c, nil
}

// runBackup writes the cluster's state to a file:
//
//	throttledb backup --addr host:port[,...] --file throttle.backup
func runBackup(args []string) error {
	f, c, err := parseBackupFlags("backup", "file to write the backup to", args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	img, err := c.Backup(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// Write a temporary file and rename it, so that a crash never leaves a
	// half-written backup under the real name.
	tmp := f.file + ".tmp"
	if err := writeSynced(tmp, img); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, f.file); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Printf("backup: wrote %d bytes to %s\n", len(img), f.file)
	return nil
}

// runRestore replaces the cluster's state with a backup file:
//
//	throttledb restore --addr host:port[,...] --file throttle.backup
func runRestore(args []string) error {
	f, c, err := parseBackupFlags("restore", "backup file to restore", args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	defer c.Close()
	img, err := os.ReadFile(f.file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	keys, err := c.Restore(ctx, img)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Printf("restore: done; the cluster now holds the %d keys of %s\n", keys, f.file)
	return nil
}

func writeSynced(name string, data []byte) error {
	fh, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}
