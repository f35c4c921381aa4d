package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/droverhq/drover/cmd/drover/internal/apiclient"
	"github.com/droverhq/drover/cmd/drover/internal/wire"
	"github.com/droverhq/drover/orchestrator"
	"github.com/droverhq/drover/orchestrator/readiness"
	"github.com/droverhq/drover/runs"
	"github.com/droverhq/drover/runs/report"
)

// This file is the CLI over a daemon's API (--server URL): apply, analyze, plan,
// runs list, show, stop, resume, approve and report send their request to `drover
// serve` and print what the local commands print. Other commands refuse --server
// (root.go).

// remote reports whether --server was given.
func (f *Factory) remote() bool { return f.Server != "" }

// apiClient returns the daemon's client; the token comes from --token, else
// DROVER_TOKEN.
func (f *Factory) apiClient() (*apiclient.Client, error) {
	if len(f.Sets) > 0 {
		return nil, usageErr(errors.New("--set changes the local config, which --server does not read; configure the daemon instead"))
	}
	token := f.Token
	if token == "" {
		token = os.Getenv("DROVER_TOKEN")
	}
	c, err := apiclient.New(f.Server, token, nil)
	if err != nil {
		return nil, usageErr(err)
	}
	if u, err := url.Parse(f.Server); err == nil && u.Scheme == "http" && !loopbackHost(u.Hostname()) && !f.InsecureHTTP {
		return nil, usageErr(fmt.Errorf("--server %s: plain http to a host that is not loopback would send the token in clear: use https://, or --insecure-http if the network between you and the daemon is trusted", u.Host))
	}
	return c, nil
}

// loopbackHost tells whether host names this machine only: localhost or a
// loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// remoteCluster is the cluster named by --cluster-name or DROVER_CLUSTER_NAME; ""
// lets the daemon pick its only cluster.
func (f *Factory) remoteCluster() string {
	for _, b := range f.Bindings {
		if b.Key == "cluster.name" && b.Flag != nil && b.Flag.Changed {
			return b.Flag.Value.String()
		}
	}
	return os.Getenv("DROVER_CLUSTER_NAME")
}

// remotePolicy turns the policy flags given on the command line into the run's
// overrides; flags the API does not take are usage errors.
func (f *Factory) remotePolicy() (*wire.PolicyOverrides, error) {
	set := map[string]any{}
	flags := map[string]string{}
	for _, b := range f.Bindings {
		key, ok := strings.CutPrefix(b.Key, "policy.")
		if !ok || b.Flag == nil || !b.Flag.Changed {
			continue
		}
		flags[key] = b.Flag.Name
		switch b.Flag.Value.Type() {
		case "int":
			n, err := strconv.Atoi(b.Flag.Value.String())
			if err != nil {
				return nil, usageErr(fmt.Errorf("--%s: %w", b.Flag.Name, err))
			}
			set[key] = n
		case "bool":
			set[key] = b.Flag.Value.String() == "true"
		case "stringSlice":
			if sv, ok := b.Flag.Value.(pflag.SliceValue); ok {
				set[key] = sv.GetSlice()
			}
		default:
			set[key] = b.Flag.Value.String()
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	raw, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	var o wire.PolicyOverrides
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		for key, name := range flags {
			if strings.Contains(err.Error(), `"`+key+`"`) {
				return nil, usageErr(fmt.Errorf("--%s cannot be used with --server: the daemon's config sets policy.%s", name, key))
			}
		}
		return nil, usageErr(err)
	}
	return &o, nil
}

// remoteErr maps an API error to an exit status: refusals of the request are usage
// errors, the rest failures.
func remoteErr(err error) error {
	var ae *apiclient.APIError
	if errors.As(err, &ae) && (ae.Status == 400 || ae.Status == 401 || ae.Status == 403 || ae.Status == 413 || ae.Status == 415) {
		return usageErr(err)
	}
	return failedErr(err)
}

// daemonCluster is the cluster to ask the daemon about: --cluster-name (or
// DROVER_CLUSTER_NAME), else the daemon's only cluster.
func (f *Factory) daemonCluster(ctx context.Context, c *apiclient.Client) (string, error) {
	if name := f.remoteCluster(); name != "" {
		return name, nil
	}
	cl, err := c.Clusters(ctx)
	if err != nil {
		return "", remoteErr(err)
	}
	if len(cl) != 1 {
		return "", usageErr(fmt.Errorf("the daemon runs %d clusters: name one with --cluster-name", len(cl)))
	}
	return cl[0].Name, nil
}

// noPolicyFlags refuses the policy flags of a command whose API route takes none:
// the daemon answers with its own policy.
func (f *Factory) noPolicyFlags(command string) error {
	for _, b := range f.Bindings {
		if key, ok := strings.CutPrefix(b.Key, "policy."); ok && b.Flag != nil && b.Flag.Changed {
			return usageErr(fmt.Errorf("--%s cannot be used with --server: the daemon's %s uses the policy of its config (policy.%s); drop the flag, or run %s locally with --config", b.Flag.Name, command, key, command))
		}
	}
	return nil
}

// remoteRead prepares a read-only command through the daemon: it refuses policy
// flags (the daemon applies its own policy) and resolves the cluster.
func (f *Factory) remoteRead(ctx context.Context, command string) (*apiclient.Client, string, error) {
	if err := f.noPolicyFlags(command); err != nil {
		return nil, "", err
	}
	c, err := f.apiClient()
	if err != nil {
		return nil, "", err
	}
	cluster, err := f.daemonCluster(ctx, c)
	if err != nil {
		return nil, "", err
	}
	return c, cluster, nil
}

// remoteAnalyze prints the daemon's readiness checks of the cluster, as analyze does.
func remoteAnalyze(ctx context.Context, opts *AnalyzeOptions) error {
	f := opts.f
	c, cluster, err := f.remoteRead(ctx, "analyze")
	if err != nil {
		return err
	}
	a, err := c.Analyze(ctx, cluster)
	if err != nil {
		return remoteErr(err)
	}
	if opts.JSON {
		err = printJSON(f.IO.Out, a)
	} else {
		err = printAnalysis(f.IO.Out, a)
	}
	if err != nil {
		return err
	}
	if !a.Ready {
		return failedErr(fmt.Errorf("cluster %s is not ready: %d check(s) failed", a.Cluster, a.Count(readiness.CheckFail)))
	}
	return nil
}

// remotePlan prints the daemon's plan of a run started now, as plan does.
func remotePlan(ctx context.Context, opts *PlanOptions) error {
	f := opts.f
	c, cluster, err := f.remoteRead(ctx, "plan")
	if err != nil {
		return err
	}
	p, err := c.Plan(ctx, cluster)
	if err != nil {
		return remoteErr(err)
	}
	if opts.JSON {
		err = printJSON(f.IO.Out, p)
	} else {
		err = printPlan(f.IO.Out, cluster, p)
		if err == nil {
			if info, ierr := c.Cluster(ctx, cluster); ierr == nil {
				fmt.Fprintf(report.SafeWriter(f.IO.Out), "Policy of cluster %s: %s\n", cluster, wire.PolicyLine(info.Policy))
			}
		}
	}
	if err != nil {
		return err
	}
	if p.Blocked > 0 {
		return failedErr(fmt.Errorf("%d node(s) cannot be maintained; see the plan", p.Blocked))
	}
	return nil
}

func remoteApply(ctx context.Context, opts *ApplyOptions) error {
	f := opts.f
	c, err := f.apiClient()
	if err != nil {
		return err
	}
	pol, err := f.remotePolicy()
	if err != nil {
		return err
	}
	cluster := f.remoteCluster()
	if opts.DryRun || !opts.Yes {
		if cluster, err = f.daemonCluster(ctx, c); err != nil {
			return err
		}
		pv, err := c.Preview(ctx, cluster)
		if err != nil {
			return remoteErr(err)
		}
		prep := orchestrator.Prepared{Order: pv.Order, Records: pv.Nodes}
		if opts.DryRun {
			if opts.JSON {
				return printJSON(f.IO.Out, pv)
			}
			if pv.UnfinishedRun != "" {
				fmt.Fprintf(f.IO.Out, "Run %s is unfinished: the daemon resumes it; a new run cannot start before it ends.\n", pv.UnfinishedRun)
			}
			fmt.Fprintln(f.IO.Out, "Dry run: nothing will be changed. A new run would do (with the daemon's policy):")
			printPrepared(f.IO.Out, prep)
			if pv.Plan == nil {
				return nil
			}
			fmt.Fprintln(f.IO.Out)
			return printPlan(f.IO.Out, cluster, pv.Plan)
		}
		printPrepared(f.IO.ErrOut, prep)
		if !f.IO.IsTerminal {
			return usageErr(errors.New("apply changes the cluster: confirm with --yes (or run on a terminal)"))
		}
		if !confirm(f.IO, "Start the run on the daemon?") {
			return failedErr(errors.New("not started"))
		}
	}
	act, err := c.Start(ctx, wire.StartRequest{Cluster: cluster, Policy: pol})
	if err != nil {
		var ae *apiclient.APIError
		if errors.As(err, &ae) && ae.Status == 409 && ae.Body.RunID != "" {
			return failedErr(fmt.Errorf("%w; follow it with: drover runs show %s --server %s", err, ae.Body.RunID, f.Server))
		}
		return remoteErr(err)
	}
	fmt.Fprintf(progressWriter(f.IO, opts.JSON), "run %s started on the daemon (cluster %s)\n", act.ID, act.Cluster)
	return followRemote(ctx, f, c, act.ID, opts.JSON, 0)
}

// followRemote shows a run's live events as the local display does, then prints its
// report; the exit status follows the run's end as for a local run. wait > 0 bounds
// the wait.
func followRemote(ctx context.Context, f *Factory, c *apiclient.Client, id string, jsonOut bool, wait time.Duration) error {
	io := f.IO
	rep, err := c.Report(ctx, "", id)
	if err != nil {
		return remoteErr(err)
	}
	order := make([]string, 0, len(rep.Nodes))
	for _, n := range rep.Nodes {
		order = append(order, n.Name)
	}
	live := io.IsTerminal && !jsonOut
	out := progressWriter(io, jsonOut)
	d := newDisplay(out, live, io.TermWidth, order)
	for _, n := range rep.Nodes {
		d.setState(n.Name, n.State)
	}
	go d.run()
	fctx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	parked := false
	streamErr := c.Events(fctx, id, func(ev orchestrator.Event) (bool, error) {
		d.Observe(ev)
		if ev.Kind == orchestrator.EventApprovalNeeded {
			parked = true
			return true, nil
		}
		return false, nil
	})
	d.stop()
	switch {
	case errors.Is(streamErr, context.DeadlineExceeded) && ctx.Err() == nil:
		return failedErr(fmt.Errorf("run %s did not end within --wait %s; it goes on in the daemon", id, wait))
	case ctx.Err() != nil:
		return failedErr(fmt.Errorf("stopped following run %s; it goes on in the daemon: drover runs show %s --server %s", id, id, f.Server))
	case errors.Is(streamErr, apiclient.ErrStreamEnded):
		return failedErr(fmt.Errorf("run %s: %w; it resumes when the daemon starts again", id, streamErr))
	case streamErr != nil:
		return remoteErr(streamErr)
	}
	rep, err = c.Report(ctx, "", id)
	if err != nil {
		return remoteErr(err)
	}
	if jsonOut {
		if err := printJSON(io.Out, rep); err != nil {
			return err
		}
	} else {
		printReport(io.Out, rep)
	}
	if parked || rep.State == string(runs.StateWaitingApproval) {
		// As a local run: waiting after the canary node is where a canary run is meant
		// to stop, not a failure (exit 0, the report says waiting_approval).
		fmt.Fprintf(io.ErrOut, "run %s waits after its canary node: check it, then continue with `drover runs approve %s --server %s`\n", id, id, f.Server)
		return nil
	}
	if rep.State != string(runs.StateSucceeded) {
		msg := fmt.Sprintf("run %s %s", id, rep.State)
		if rep.Error != "" {
			msg += ": " + rep.Error
		}
		return failedErr(errors.New(msg))
	}
	return nil
}

func remoteRunsList(ctx context.Context, opts *RunsOptions) error {
	c, err := opts.f.apiClient()
	if err != nil {
		return err
	}
	list, err := c.Runs(ctx, opts.f.remoteCluster())
	if err != nil {
		return remoteErr(err)
	}
	if opts.JSON {
		if list == nil {
			list = []wire.RunSummary{}
		}
		return printJSON(opts.f.IO.Out, list)
	}
	tw := tabwriter.NewWriter(report.SafeWriter(opts.f.IO.Out), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCLUSTER\tSTATE\tSTARTED\tDURATION\tNODES\tERROR")
	for _, r := range list {
		dur := "-"
		if !r.FinishedAt.IsZero() {
			dur = r.FinishedAt.Sub(r.StartedAt).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.Cluster, r.State, r.StartedAt.Local().Format("2006-01-02 15:04:05"), dur, r.Nodes, r.Error)
	}
	return tw.Flush()
}

// runCluster is the cluster a run named on the command line must belong to:
// --cluster-name when given; for "last", else the daemon's only cluster.
func (f *Factory) runCluster(ctx context.Context, c *apiclient.Client, id string) (string, error) {
	if name := f.remoteCluster(); name != "" || id != "last" {
		return name, nil
	}
	return f.daemonCluster(ctx, c)
}

func remoteRunsShow(ctx context.Context, opts *RunsOptions) error {
	c, err := opts.f.apiClient()
	if err != nil {
		return err
	}
	cluster, err := opts.f.runCluster(ctx, c, opts.ID)
	if err != nil {
		return err
	}
	rep, err := c.Report(ctx, cluster, opts.ID)
	if err != nil {
		return remoteErr(err)
	}
	if opts.JSON {
		return printJSON(opts.f.IO.Out, rep)
	}
	printReport(opts.f.IO.Out, rep)
	return nil
}

// remoteRunAction asks the daemon to stop, resume or approve a run, then follows it
// to its end as the local commands do.
func remoteRunAction(ctx context.Context, opts *RunsOptions, action string) error {
	c, err := opts.f.apiClient()
	if err != nil {
		return err
	}
	cluster, err := opts.f.runCluster(ctx, c, opts.ID)
	if err != nil {
		return err
	}
	act, err := c.Act(ctx, cluster, opts.ID, action)
	if err != nil {
		return remoteErr(err)
	}
	fmt.Fprintf(progressWriter(opts.f.IO, opts.JSON), "run %s: %s\n", act.ID, act.Action)
	err = followRemote(ctx, opts.f, c, act.ID, opts.JSON, opts.Wait)
	if action == "stop" {
		// A stop succeeds when the run ends stopped (or had ended anyway).
		if rep, rerr := c.Report(ctx, "", act.ID); rerr == nil && rep.State == string(runs.StateStopped) {
			return nil
		}
	}
	return err
}

func remoteRunsReport(ctx context.Context, opts *RunsReportOptions) error {
	c, err := opts.f.apiClient()
	if err != nil {
		return err
	}
	cluster, err := opts.f.runCluster(ctx, c, opts.ID)
	if err != nil {
		return err
	}
	w, done, err := opts.output()
	if err != nil {
		return err
	}
	if err := c.RenderReport(ctx, cluster, opts.ID, opts.Format, w); err != nil {
		_ = done(false)
		return remoteErr(err)
	}
	return done(true)
}
