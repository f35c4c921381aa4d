package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/droverhq/drover/orchestrator"
)

// display shows a run's progress: on a terminal a live block with a line per node
// and the migrations in flight, redrawn in place; otherwise plain lines, one per event.
type display struct {
	w     io.Writer
	live  bool
	width int

	mu       sync.Mutex
	order    []string
	nodes    map[string]*nodeView
	flights  map[string]*flight // by VM
	runID    string
	started  time.Time
	lines    int // lines of the last live frame
	done     chan struct{}
	exited   chan struct{} // closed when run has returned: no frame is drawn after it
	finished bool
	notice   string // what the whole run waits for (an approval)
}

type nodeView struct {
	state         string
	moved, failed int
	message       string
	waiting       string // why a queued node has not started (window, reserve, ...)
}

type flight struct {
	vm, from, to string
	node         string // the run's node it belongs to: a drain's source, a failback's target
	phase        string
	round        int
	done, total  float64
}

func newDisplay(w io.Writer, live bool, width int, order []string) *display {
	d := &display{w: w, live: live, width: width, nodes: map[string]*nodeView{}, flights: map[string]*flight{}, done: make(chan struct{}), exited: make(chan struct{})}
	d.setOrder(order)
	return d
}

func (d *display) setOrder(order []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.order = append([]string(nil), order...)
	for _, n := range order {
		if d.nodes[n] == nil {
			d.nodes[n] = &nodeView{state: orchestrator.NodeQueued}
		}
	}
}

// setState seeds a node's state (a resumed run starts mid-way).
func (d *display) setState(node, state string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v := d.nodes[node]; v != nil {
		v.state = state
	}
}

// Observe implements orchestrator.Observer.
func (d *display) Observe(ev orchestrator.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started.IsZero() {
		d.started = ev.Time
	}
	if ev.RunID != "" {
		d.runID = ev.RunID
	}
	v := d.nodes[ev.Node]
	switch ev.Kind {
	case orchestrator.EventNodeState:
		if v != nil {
			v.state = ev.State
			v.message = ev.Message
			v.waiting = ""
		}
	case orchestrator.EventWaiting:
		if v != nil {
			v.waiting = ev.Message
		}
	case orchestrator.EventApprovalNeeded:
		d.notice = ev.Message
	case orchestrator.EventMigrationStarted:
		node := ev.Node
		if node == "" {
			node = ev.From
		}
		d.flights[ev.VM] = &flight{vm: ev.VM, from: ev.From, to: ev.To, node: node, phase: "setup"}
	case orchestrator.EventMigrationProgress:
		if f := d.flights[ev.VM]; f != nil && ev.Progress != nil {
			f.phase, f.round = ev.Progress.Phase, ev.Progress.Round
			f.done = ev.Progress.TransferredMiB
			f.total = ev.Progress.TransferredMiB + ev.Progress.RemainingMiB
		}
	case orchestrator.EventMigrationDone:
		delete(d.flights, ev.VM)
		if v != nil {
			v.moved++
		}
	case orchestrator.EventMigrationAborted:
		delete(d.flights, ev.VM)
	case orchestrator.EventMigrationFailed:
		delete(d.flights, ev.VM)
		if v != nil {
			v.failed++
		}
	}
	if !d.live {
		d.plainLine(ev)
	}
}

func (d *display) plainLine(ev orchestrator.Event) {
	ts := time.Now().Format("15:04:05")
	var line string
	switch ev.Kind {
	case orchestrator.EventRunStarted:
		line = fmt.Sprintf("run %s started: %d nodes", ev.RunID, ev.Total)
	case orchestrator.EventRunResumed:
		line = fmt.Sprintf("run %s resumed", ev.RunID)
	case orchestrator.EventRunFinished:
		line = fmt.Sprintf("run %s finished: %s %s", ev.RunID, ev.State, ev.Message)
	case orchestrator.EventNodeState:
		line = fmt.Sprintf("node %s: %s", ev.Node, ev.State)
		if ev.Message != "" && (ev.State == orchestrator.NodeResuming || ev.State == orchestrator.NodeFailed) {
			line += " (" + ev.Message + ")"
		}
	case orchestrator.EventMigrationStarted:
		line = fmt.Sprintf("migrate %s %s -> %s", ev.VM, ev.From, ev.To)
	case orchestrator.EventMigrationDone:
		line = fmt.Sprintf("migrated %s %s -> %s in %.1fs", ev.VM, ev.From, ev.To, ev.Seconds)
	case orchestrator.EventMigrationFailed:
		line = fmt.Sprintf("migration of %s %s -> %s failed: %s", ev.VM, ev.From, ev.To, ev.Message)
	case orchestrator.EventMigrationAborted:
		line = fmt.Sprintf("migration of %s %s -> %s aborted by the run; %s stays on %s", ev.VM, ev.From, ev.To, ev.VM, ev.From)
	case orchestrator.EventWarning, orchestrator.EventApprovalNeeded:
		line = "WARNING: " + ev.Message
		if ev.Kind == orchestrator.EventApprovalNeeded {
			line = ev.Message
		}
	case orchestrator.EventWaiting:
		line = fmt.Sprintf("node %s %s", ev.Node, ev.Message)
	default:
		return
	}
	fmt.Fprintf(d.w, "%s %s\n", ts, line)
}

// run redraws the live block until stop is called; then it erases the block, so
// that what the caller prints next (the report) takes its place.
func (d *display) run() {
	defer close(d.exited)
	if !d.live {
		return
	}
	t := time.NewTicker(150 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.redraw()
		case <-d.done:
			d.mu.Lock()
			d.erase()
			d.mu.Unlock()
			return
		}
	}
}

// stop ends the live block and returns once it is erased: nothing of the display
// is written after stop returns, so the report printed next stays intact. run must
// have been started.
func (d *display) stop() {
	d.mu.Lock()
	if !d.finished {
		d.finished = true
		close(d.done)
	}
	d.mu.Unlock()
	<-d.exited
}

// erase clears the last frame and leaves the cursor where it began (d.mu held).
func (d *display) erase() {
	if d.lines > 0 {
		fmt.Fprintf(d.w, "\x1b[%dA\r\x1b[J", d.lines)
		d.lines = 0
	}
}

// logWriter is where log lines go while the display runs: on a terminal each write
// erases the live block and is printed where it was (the next frame is drawn below
// it), so log lines end up above the block and never inside it; otherwise, and once
// the display has stopped, writes go to fallback.
func (d *display) logWriter(fallback io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.live || d.finished {
			return fallback.Write(p)
		}
		d.erase()
		return d.w.Write(p)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (d *display) redraw() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished {
		return
	}
	var b strings.Builder
	if d.lines > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", d.lines) // back to the top of the last frame
	}
	var lines []string
	doneCount := 0
	for _, n := range d.order {
		if orchestrator.NodeTerminal(d.nodes[n].state) {
			doneCount++
		}
	}
	lines = append(lines, fmt.Sprintf("run %s: %d/%d %s finished, %d %s in flight", d.runID, doneCount, len(d.order), plural(len(d.order), "node", "nodes"), len(d.flights), plural(len(d.flights), "migration", "migrations")))
	if d.notice != "" {
		lines = append(lines, "   "+d.notice)
	}
	byNode := map[string][]*flight{}
	for _, f := range d.flights {
		byNode[f.node] = append(byNode[f.node], f)
	}
	for _, n := range d.order {
		v := d.nodes[n]
		mark := " "
		switch {
		case v.state == orchestrator.NodeDone:
			mark = "+"
		case v.state == orchestrator.NodeFailed:
			mark = "!"
		case v.state == orchestrator.NodeSkipped:
			mark = "-"
		case v.state != orchestrator.NodeQueued:
			mark = ">"
		}
		line := fmt.Sprintf(" %s %-14s %-13s %d moved", mark, n, v.state, v.moved)
		if v.failed > 0 {
			line += fmt.Sprintf(", %d failed attempts", v.failed)
		}
		if v.message != "" && (v.state == orchestrator.NodeFailed || v.state == orchestrator.NodeSkipped || v.state == orchestrator.NodeResuming) {
			line += ": " + v.message
		}
		if v.waiting != "" && v.state == orchestrator.NodeQueued {
			line += ": " + v.waiting
		}
		lines = append(lines, line)
		fl := byNode[n]
		sort.Slice(fl, func(i, j int) bool { return fl[i].vm < fl[j].vm })
		for _, f := range fl {
			lines = append(lines, "     "+f.String())
		}
	}
	for _, l := range lines {
		if d.width > 4 && len(l) > d.width-1 {
			l = l[:d.width-1]
		}
		b.WriteString("\x1b[2K" + l + "\n")
	}
	// Clear what is left of a longer previous frame.
	for i := len(lines); i < d.lines; i++ {
		b.WriteString("\x1b[2K\n")
	}
	if extra := d.lines - len(lines); extra > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", extra)
	}
	d.lines = len(lines)
	io.WriteString(d.w, b.String())
}

func (f *flight) String() string {
	s := fmt.Sprintf("%-16s %s -> %s  ", f.vm, f.from, f.to)
	if f.total <= 0 {
		return s + f.phase
	}
	const width = 20
	frac := f.done / f.total
	if frac > 1 {
		frac = 1
	}
	filled := int(frac * width)
	return s + fmt.Sprintf("[%s%s] %3.0f%% %s round %d", strings.Repeat("#", filled), strings.Repeat(".", width-filled), frac*100, f.phase, f.round)
}

// plural picks the word for n things.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
