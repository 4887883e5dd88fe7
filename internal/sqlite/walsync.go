package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// walSyncer makes commits durable by syncing the write-ahead log itself.
//
// The writer connection runs with synchronous=NORMAL: a commit writes its
// WAL frames and returns without an fsync (SQLite still syncs the WAL before
// each checkpoint and the database after it, and the WAL header when it is
// reused). Every write then calls sync before it returns or is
// acknowledged, and sync fdatasyncs the WAL file, which makes every frame
// committed before the call durable. What this buys over synchronous=FULL:
// the fsync happens after the writer connection is released, so the next
// batch of reports runs its statements while this one's fsync is on the
// disk (see DB.IngestDeferred), and one fsync covers every commit made
// before it started.
//
// A failed fsync is final: Linux may have dropped the dirty pages it could
// not write, so a later fsync that succeeds proves nothing about them.
// After one, every write fails until the process restarts and SQLite
// recovers from what is on disk.
type walSyncer struct {
	path string

	mu        sync.Mutex
	f         *os.File
	ino       uint64
	requested uint64 // sync calls so far (guarded by reqMu)
	synced    uint64 // every call numbered up to this is durable
	failed    error
	down      chan struct{} // closed when failed is set

	reqMu sync.Mutex
}

func newWALSyncer(dbPath string) *walSyncer {
	return &walSyncer{path: dbPath + "-wal", down: make(chan struct{})}
}

// sync returns once every commit made before the call is durable.
func (w *walSyncer) sync() error {
	w.reqMu.Lock()
	w.requested++
	mine := w.requested
	w.reqMu.Unlock()

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return w.failed
	}
	if w.synced >= mine {
		return nil // an fsync that started after this call's commit has finished
	}
	w.reqMu.Lock()
	upTo := w.requested // each of these calls came after its commit
	w.reqMu.Unlock()
	if err := w.open(); err != nil {
		return w.fail(fmt.Errorf("sqlite: sync %s: %w (writes are refused until tes restarts)", w.path, err))
	}
	if err := fdatasync(w.f); err != nil {
		return w.fail(fmt.Errorf("sqlite: sync %s: %w (writes are refused until tes restarts)", w.path, err))
	}
	w.synced = upTo
	return nil
}

// fail records the first failure, which every later sync returns, and
// closes down; w.mu is held.
func (w *walSyncer) fail(err error) error {
	w.failed = err
	close(w.down)
	return err
}

// open (re)opens the WAL file when it is not open or the path now names
// another file (SQLite deletes the WAL only when its last connection
// closes, which the store does not do while open; the check costs a stat).
func (w *walSyncer) open() error {
	st, err := os.Stat(w.path)
	if err != nil {
		return err
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	if w.f != nil && ino == w.ino {
		return nil
	}
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	w.f, w.ino = f, ino
	// The file's directory entry must be durable too, once.
	return syncDir(filepath.Dir(w.path))
}

func (w *walSyncer) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
