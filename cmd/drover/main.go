// Command drover is the cluster-aware rolling maintenance orchestrator.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// Windows and failback hours name time zones: do not depend on the host's database.
	_ "time/tzdata"

	"golang.org/x/term"

	"github.com/droverhq/drover/cmd/drover/internal/cli"
	_ "github.com/droverhq/drover/drivers/all"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first SIGINT/SIGTERM interrupts the run cleanly (migrations in flight are
	// aborted, the journal is written); a second one exits at once. SIGHUP (a closed
	// terminal, or `systemctl reload`/`kill -HUP` of the daemon) does what SIGTERM
	// does: the daemon shuts down cleanly and, under systemd's Restart=always,
	// starts again with the config as it is now; its runs resume.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "drover: second signal, exiting now")
		os.Exit(130)
	}()

	streams := cli.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if fd := int(os.Stdout.Fd()); term.IsTerminal(fd) {
		streams.IsTerminal = true
		if w, _, err := term.GetSize(fd); err == nil {
			streams.TermWidth = w
		}
	}
	f := &cli.Factory{IO: streams, Version: version}
	root := cli.NewCmdRoot(f)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drover:", err)
	}
	return cli.ExitCode(err)
}
