package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/droverhq/drover/drivers"
)

// NewCmdVersion builds `drover version`.
func NewCmdVersion(f *Factory) *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go version and the built-in drivers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := map[string]any{
				"version":  f.Version,
				"go":       runtime.Version(),
				"drivers":  drivers.Names(),
				"updaters": drivers.UpdaterNames(),
			}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						info["commit"] = s.Value
					}
				}
			}
			if jsonOut {
				return printJSON(f.IO.Out, info)
			}
			fmt.Fprintf(f.IO.Out, "drover %s (%s)\ndrivers: %v\nupdate plug-ins: %v\n", f.Version, runtime.Version(), info["drivers"], info["updaters"])
			return nil
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}
