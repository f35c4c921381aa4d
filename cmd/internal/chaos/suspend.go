package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	"github.com/droverhq/drover/cluster"
	"github.com/droverhq/drover/drivers/sim"
)

// suspendVMs writes into dir a copy of the cluster file src in which n of its
// running, migratable VMs (chosen by seed) are suspended, and returns the copy's
// path and the suspended VMs. A suspended VM holds its saved state on its node: a
// run must move it before the reboot or lose it.
func suspendVMs(src, dir string, n int, seed uint64) (string, []string, error) {
	c, err := sim.LoadCluster(src)
	if err != nil {
		return "", nil, fmt.Errorf("suspend vms: %w", err)
	}
	var candidates []int
	for i, v := range c.VMs {
		if v.Power == cluster.PowerRunning && v.Migratable {
			candidates = append(candidates, i)
		}
	}
	if n > len(candidates) {
		return "", nil, fmt.Errorf("suspend vms: %s has %d running migratable vms, %d asked", src, len(candidates), n)
	}
	r := rand.New(rand.NewPCG(seed, 0x5a7ed))
	r.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	var names []string
	for _, i := range candidates[:n] {
		c.VMs[i].Power = cluster.PowerSuspended
		names = append(names, c.VMs[i].Name)
	}
	sort.Strings(names)
	// JSON is YAML: the sim reads the copy like any cluster file.
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", nil, fmt.Errorf("suspend vms: %w", err)
	}
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", nil, fmt.Errorf("suspend vms: %w", err)
	}
	return path, names, nil
}
