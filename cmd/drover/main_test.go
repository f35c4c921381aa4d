package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/droverhq/drover/cmd/internal/chaos"
)

// The tests of this package run the real binary, built once per test process.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "drover-bin-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// droverBinary builds cmd/drover (once) and returns the binary's path.
func droverBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() { binPath, binErr = chaos.Build(context.Background(), binDir) })
	if binErr != nil {
		t.Fatalf("build drover: %v", binErr)
	}
	return binPath
}

// moduleRoot is the repository's root (this package is cmd/drover).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}
