package runs

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stateWithBranchPages writes a state file whose runs bucket is big enough to need
// branch pages, and returns its bytes and page size.
func stateWithBranchPages(t *testing.T) ([]byte, int) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		id := fmt.Sprintf("run-%04d", i)
		if err := st.Update(func(tx *Tx) error {
			return tx.CreateRun(Run{ID: id, Cluster: "c", State: StateSucceeded, Order: []string{"n1"}}, []NodeRecord{{Name: "n1", State: "done"}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := readMeta(data)
	if !ok {
		t.Fatal("no meta on a fresh state file")
	}
	return data, int(m.pageSize)
}

// firstPage returns the offset of the first page in use with the given flags.
func firstPage(t *testing.T, data []byte, pageSize int, flags uint16) int {
	t.Helper()
	for off := 2 * pageSize; off+pageHeader <= len(data); off += pageSize {
		if binary.LittleEndian.Uint16(data[off+8:]) == flags && binary.LittleEndian.Uint64(data[off:]) == uint64(off/pageSize) {
			return off
		}
	}
	t.Fatalf("no page with flags %#x", flags)
	return 0
}

func TestOpen_RefusesAForgedPageTree(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name  string
		forge func(data []byte, pageSize int)
		want  string
	}{
		{name: "branch-points-at-itself", want: "reached twice", forge: func(data []byte, pageSize int) {
			off := firstPage(t, data, pageSize, branchPageFlag)
			le.PutUint64(data[off+pageHeader+8:], uint64(off/pageSize))
		}},
		{name: "branch-points-past-the-pages-in-use", want: "outside the", forge: func(data []byte, pageSize int) {
			off := firstPage(t, data, pageSize, branchPageFlag)
			le.PutUint64(data[off+pageHeader+8:], 1<<40)
		}},
		{name: "page-claims-another-id", want: "says it is page", forge: func(data []byte, pageSize int) {
			off := firstPage(t, data, pageSize, leafPageFlag)
			le.PutUint64(data[off:], 7777)
		}},
		{name: "leaf-element-runs-past-its-page", want: "runs past the page", forge: func(data []byte, pageSize int) {
			off := firstPage(t, data, pageSize, leafPageFlag)
			le.PutUint32(data[off+pageHeader+12:], 1<<30)
		}},
		{name: "too-many-elements", want: "do not fit", forge: func(data []byte, pageSize int) {
			off := firstPage(t, data, pageSize, leafPageFlag)
			le.PutUint16(data[off+10:], 0xffff)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, pageSize := stateWithBranchPages(t)
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if st, err := Open(path, Options{ReadOnly: true}); err != nil {
				t.Fatalf("the unforged file is refused: %v", err)
			} else {
				st.Close()
			}
			tt.forge(data, pageSize)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Open(path, Options{ReadOnly: true})
			if err == nil {
				st.Close()
				t.Fatal("a forged page tree was opened")
			}
			if !IsDamaged(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a damaged-file error saying %q", err, tt.want)
			}
		})
	}
}

func TestRepair_SkipsABucketWhosePagesLoop(t *testing.T) {
	data, pageSize := stateWithBranchPages(t)
	off := firstPage(t, data, pageSize, branchPageFlag)
	binary.LittleEndian.PutUint64(data[off+pageHeader+8:], uint64(off/pageSize))
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := Check(path); err != nil || !strings.Contains(rep.Damaged, "reached twice") {
		t.Fatalf("Check = %+v, %v; want it damaged by a page reached twice", rep, err)
	}
	rep, err := Repair(path, time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("Repair: %v", err)
	}
	lost := strings.Join(rep.Lost, "\n")
	if !strings.Contains(lost, "all of it") || !strings.Contains(lost, "reached twice") {
		t.Fatalf("Repair lost %q, want the looping bucket named", lost)
	}
	copied := 0
	for _, n := range rep.Copied {
		copied += n
	}
	if copied == 0 {
		t.Fatalf("Repair copied nothing of the sound buckets: %+v", rep)
	}
	st, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("the repaired file does not open: %v", err)
	}
	st.Close()
}
