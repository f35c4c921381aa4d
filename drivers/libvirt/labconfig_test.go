package libvirt

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/droverhq/drover/drivers"
	_ "github.com/droverhq/drover/drivers/updaters"
)

// TestConfigFiles keeps the example configs in testdata/libvirt valid: the driver and
// updater sections decode strictly and validate; for the lab, the driver opens and the
// relative lab.sh paths resolve to the real script.
func TestConfigFiles(t *testing.T) {
	dir, err := filepath.Abs("../../testdata/libvirt")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  string
		hosts int
		open  bool // Open needs no files outside the repository
	}{
		{name: "lab", file: "lab.yaml", hosts: 3, open: true},
		{name: "example", file: "example.yaml", hosts: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var file struct {
				Cluster struct {
					Driver  string         `yaml:"driver"`
					Libvirt map[string]any `yaml:"libvirt"`
					Updater map[string]any `yaml:"updater"`
				} `yaml:"cluster"`
			}
			if err := yaml.Unmarshal(data, &file); err != nil {
				t.Fatal(err)
			}
			if file.Cluster.Driver != "libvirt" {
				t.Fatalf("cluster.driver = %q", file.Cluster.Driver)
			}
			cfg := NewConfig()
			if err := drivers.Decode(file.Cluster.Libvirt, cfg); err != nil {
				t.Fatalf("decode cluster.libvirt: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("validate: %v", drivers.PrefixFields("cluster.libvirt", err))
			}
			if len(cfg.Hosts) != tt.hosts {
				t.Fatalf("hosts = %d, want %d", len(cfg.Hosts), tt.hosts)
			}
			if tt.open {
				cfg.StateDir = t.TempDir() // Open creates it; keep the test out of /tmp/drover-lab
				drv, err := cfg.Open(t.Context(), drivers.Env{BaseDir: dir})
				if err != nil {
					t.Fatalf("open: %v", drivers.PrefixFields("cluster.libvirt", err))
				}
				defer drv.Close()
				for _, h := range drv.(*Driver).hosts {
					for _, argv := range [][]string{h.RebootCommand, h.BootIDCommand} {
						if fi, err := os.Stat(argv[0]); err != nil || fi.Mode()&0o111 == 0 {
							t.Errorf("host %s: command %q is not an executable: %v", h.Name, argv[0], err)
						}
					}
				}
			}

			kind, _ := file.Cluster.Updater["kind"].(string)
			info, ok := drivers.LookupUpdater(kind)
			if !ok {
				t.Fatalf("updater kind %q not registered", kind)
			}
			section, _ := file.Cluster.Updater[kind].(map[string]any)
			ucfg := info.NewConfig()
			if err := drivers.Decode(section, ucfg); err != nil {
				t.Fatalf("decode cluster.updater.%s: %v", kind, err)
			}
			if err := ucfg.Validate(); err != nil {
				t.Fatalf("validate cluster.updater.%s: %v", kind, err)
			}
		})
	}
}
