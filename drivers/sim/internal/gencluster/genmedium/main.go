// Command genmedium writes testdata/clusters/medium.yaml (see package gencluster).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/droverhq/drover/drivers/sim/internal/gencluster"
)

func main() {
	out := flag.String("out", "testdata/clusters/medium.yaml", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, gencluster.Medium(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "genmedium:", err)
		os.Exit(1)
	}
}
