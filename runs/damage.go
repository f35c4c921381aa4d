package runs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"runtime/debug"
)

// DamagedError: the state file exists but cannot be read as a whole (truncated,
// emptied, overwritten). Nothing is written to it; `drover state repair` copies out
// what can still be read.
type DamagedError struct {
	Path    string
	Problem string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("damaged state file %s: %s; nothing was changed: see `drover state check --state %[1]s`, then `drover state repair --state %[1]s` copies out what can still be read (the damaged file is kept next to it)", e.Path, e.Problem)
}

// bbolt's meta page: after a 16-byte page header, magic, version, page size, flags,
// the root bucket (root page, sequence), the freelist page, the high-water mark
// (pages in use), the transaction ID, and an FNV-64a checksum of what precedes it.
const (
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	pageHeader    = 16
	metaChecksumN = 56
	metaSize      = 64
)

type boltMeta struct {
	pageSize uint32
	root     uint64
	pgid     uint64
	txid     uint64
}

func readMeta(b []byte) (boltMeta, bool) {
	if len(b) < pageHeader+metaSize {
		return boltMeta{}, false
	}
	m := b[pageHeader : pageHeader+metaSize]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksumN])
	if h.Sum64() != le.Uint64(m[metaChecksumN:]) {
		return boltMeta{}, false
	}
	return boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// checkIntact looks at an existing state file before bbolt maps it: an empty file
// (bbolt would silently make it a new, empty state) and a file shorter than the
// pages its newest valid header says are in use (bbolt would panic, or fault, on the
// first missing page) are *DamagedError. A file that is not bbolt's at all is left
// to bbolt's own error.
func checkIntact(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return nil // Open reports it
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if st.Size() == 0 {
		return &DamagedError{Path: path, Problem: "the file is empty (0 bytes): a state file is never empty, so it was truncated or replaced; if you meant to start afresh, remove it"}
	}
	newest, ok := newestMeta(f)
	if !ok {
		return nil // not bbolt's: bbolt says so
	}
	if need := int64(newest.pgid) * int64(newest.pageSize); st.Size() < need {
		return &DamagedError{Path: path, Problem: fmt.Sprintf("it is %d bytes long but its header says %d are in use: it was truncated", st.Size(), need)}
	}
	if newest.pageSize < 512 || newest.pageSize > 1<<16 {
		return &DamagedError{Path: path, Problem: fmt.Sprintf("its header gives a page size of %d bytes", newest.pageSize)}
	}
	if err := newTreeWalk(f, st.Size(), newest).check(); err != nil {
		return &DamagedError{Path: path, Problem: err.Error()}
	}
	return nil
}

// guard runs fn, turning a panic of bbolt on a damaged file (and a memory fault on
// a page past the end of the file) into a *DamagedError.
func guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &DamagedError{Path: path, Problem: fmt.Sprintf("reading it failed (%v)", r)}
		}
	}()
	return fn()
}

// checkFile is what Open checks before bbolt sees the file: who may write it
// (trust.go), and whether it is whole.
func checkFile(path string) error {
	if err := CheckTrusted(path); err != nil {
		return err
	}
	return checkIntact(path)
}

// IsDamaged reports whether err says the state file is damaged.
func IsDamaged(err error) bool {
	var de *DamagedError
	return errors.As(err, &de)
}

// newestMeta returns the meta page bbolt would open the file with: the valid one of
// the two with the higher transaction ID.
func newestMeta(f *os.File) (boltMeta, bool) {
	head := make([]byte, 4096)
	n, _ := f.ReadAt(head, 0)
	m0, ok0 := readMeta(head[:n])
	var m1 boltMeta
	ok1 := false
	second := make([]byte, pageHeader+metaSize)
	if ok0 && m0.pageSize >= 512 && m0.pageSize <= 1<<16 {
		if k, _ := f.ReadAt(second, int64(m0.pageSize)); k == len(second) {
			m1, ok1 = readMeta(second)
		}
	}
	// With the first header unreadable, bbolt looks for the second at every page
	// size from 1 KiB to 16 MiB and opens the file with the first it finds.
	for i := 0; !ok0 && !ok1 && i <= 14; i++ {
		if k, _ := f.ReadAt(second, int64(1024)<<i); k == len(second) {
			m1, ok1 = readMeta(second)
		}
	}
	switch {
	case !ok0 && !ok1:
		return boltMeta{}, false
	case !ok0 || (ok1 && m1.txid > m0.txid):
		return m1, true
	}
	return m0, true
}
