package runs

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen_StateFileBytes: whatever bytes the state file holds (truncated, flipped,
// foreign), opening it read-only returns a store or an error, never a panic or a
// fault; a file that opens can be listed.
func FuzzOpen_StateFileBytes(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.db")
	st, err := Open(seed, Options{})
	if err != nil {
		f.Fatal(err)
	}
	if err := st.Update(func(tx *Tx) error {
		return tx.CreateRun(Run{ID: "r1", Cluster: "c", State: StateSucceeded, Order: []string{"n1"}}, []NodeRecord{{Name: "n1", State: "done"}})
	}); err != nil {
		f.Fatal(err)
	}
	st.Close()
	good, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:4096])
	f.Add([]byte{})
	f.Add([]byte("not a state file"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			return
		}
		defer st.Close()
		_ = guard(path, func() error { _, err := st.Runs(""); return err })
	})
}
