// Package pins keeps the server keys a client has seen, like SSH's
// known_hosts: the first key seen for a server is pinned, and a different key
// later is refused until an operator forgets the old pin.
//
// File format, one pin per line: "<host:port> <SHA256:fingerprint> <first-seen RFC 3339>".
package pins

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Pin is one pinned server key.
type Pin struct {
	Server      string
	Fingerprint string
	FirstSeen   time.Time
}

// ChangedError is returned when a server shows a key other than the pinned one.
type ChangedError struct {
	Server, Pinned, Seen, File string
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("the key of server %s has CHANGED: pinned %s, now shown %s. "+
		"This can mean someone is intercepting the connection. Nothing was sent. "+
		"If the server's key was replaced on purpose, check the new fingerprint with its operator, then run: tes pins forget %s (pins file %s)",
		e.Server, e.Pinned, e.Seen, e.Server, e.File)
}

// File is a pins file. Methods lock it (flock) so that several processes
// (the police client, `tes report`) can share one file.
type File struct {
	Path string
}

// Open returns the pins file at path; it is created on the first pin.
func Open(path string) *File { return &File{Path: path} }

// Check compares fingerprint with the pin for server. With no pin yet it
// pins it (trust on first use) and returns firstUse true. A different key
// returns a *ChangedError.
func (f *File) Check(server, fingerprint string) (firstUse bool, err error) {
	err = f.update(func(pins []Pin) ([]Pin, error) {
		for _, p := range pins {
			if p.Server == server {
				if p.Fingerprint != fingerprint {
					return nil, &ChangedError{Server: server, Pinned: p.Fingerprint, Seen: fingerprint, File: f.Path}
				}
				return nil, nil
			}
		}
		firstUse = true
		return append(pins, Pin{Server: server, Fingerprint: fingerprint, FirstSeen: time.Now().UTC()}), nil
	})
	return firstUse, err
}

// List returns every pin.
func (f *File) List() ([]Pin, error) {
	var out []Pin
	err := f.update(func(pins []Pin) ([]Pin, error) { out = pins; return nil, nil })
	return out, err
}

// Forget removes the pin for server; it is an error if there is none.
func (f *File) Forget(server string) error {
	return f.update(func(pins []Pin) ([]Pin, error) {
		for i, p := range pins {
			if p.Server == server {
				return append(pins[:i:i], pins[i+1:]...), nil
			}
		}
		return nil, fmt.Errorf("no pin for %s in %s", server, f.Path)
	})
}

// update reads the file under an exclusive lock, calls fn and writes what
// it returns (nil: no change).
func (f *File) update(fn func([]Pin) ([]Pin, error)) error {
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o700); err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	fd, err := os.OpenFile(f.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	defer fd.Close()
	if err := syscall.Flock(int(fd.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("pins: lock: %w", err)
	}
	var pins []Pin
	sc := bufio.NewScanner(fd)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasPrefix(fields[1], "SHA256:") {
			return fmt.Errorf("pins: %s line %d is not \"host:port SHA256:...\"", f.Path, n)
		}
		p := Pin{Server: fields[0], Fingerprint: fields[1]}
		if len(fields) > 2 {
			p.FirstSeen, _ = time.Parse(time.RFC3339, fields[2])
		}
		pins = append(pins, p)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	next, err := fn(pins)
	if err != nil || next == nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString("# TES known servers: host:port fingerprint first-seen. Managed by tes; see `tes pins`.\n")
	for _, p := range next {
		fmt.Fprintf(&buf, "%s %s %s\n", p.Server, p.Fingerprint, p.FirstSeen.UTC().Format(time.RFC3339))
	}
	if err := fd.Truncate(0); err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	if _, err := fd.WriteAt(buf.Bytes(), 0); err != nil {
		return fmt.Errorf("pins: %w", err)
	}
	return fd.Sync()
}

// IsChanged reports whether err is a changed-key refusal.
func IsChanged(err error) bool {
	var c *ChangedError
	return errors.As(err, &c)
}
