package runs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClose_KeepsAnotherProcesssSideFile: a store that closes removes the owner
// side file only when it names this process (issue 10, item 5).
func TestClose_KeepsAnotherProcesssSideFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := Open(path, Options{Owner: Self("test", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := json.Marshal(Owner{PID: os.Getpid() + 1, Host: "elsewhere", Command: "serve"})
	if err := os.WriteFile(ownerPath(path), other, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(ownerPath(path)); err != nil || string(b) != string(other) {
		t.Fatalf("another process's side file was removed or changed: %q %v", b, err)
	}
	// Its own is removed.
	st, err = Open(path, Options{Owner: Self("test", time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := os.Stat(ownerPath(path)); !os.IsNotExist(err) {
		t.Errorf("own side file left: %v", err)
	}
}
