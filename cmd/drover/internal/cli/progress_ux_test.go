package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/droverhq/drover/orchestrator"
)

// TestDisplay_LiveShowsWaiting: a live display (also the one of remote live mode)
// says why a queued node does not start, and stop leaves nothing drawn after it.
func TestDisplay_LiveShowsWaiting(t *testing.T) {
	var buf bytes.Buffer
	d := newDisplay(&buf, true, 200, []string{"n1", "n2"})
	d.Observe(orchestrator.Event{Kind: orchestrator.EventWaiting, RunID: "r1", Node: "n1", State: orchestrator.NodeQueued, Message: "waiting until 2026-12-08T22:00:00Z: maintenance window"})
	d.redraw()
	if !strings.Contains(buf.String(), "n1") || !strings.Contains(buf.String(), "waiting until 2026-12-08T22:00:00Z: maintenance window") {
		t.Fatalf("live frame does not show the wait:\n%q", buf.String())
	}
	go d.run()
	d.stop()
	n := buf.Len()
	d.redraw()
	if _, err := d.logWriter(&bytes.Buffer{}).Write([]byte("late\n")); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != n {
		t.Errorf("the display wrote after stop returned: %q", buf.String()[n:])
	}
	if !strings.HasSuffix(buf.String(), "\x1b[J") {
		t.Errorf("stop does not erase the last frame: %q", buf.String())
	}
}

// TestDisplay_LogLinesGoAboveTheFrame: a log line written while the display runs
// erases the frame and is printed in its place (the next frame goes below it).
func TestDisplay_LogLinesGoAboveTheFrame(t *testing.T) {
	var buf, stderr bytes.Buffer
	d := newDisplay(&buf, true, 200, []string{"n1"})
	d.redraw()
	w := d.logWriter(&stderr)
	if _, err := w.Write([]byte("time=x level=WARN msg=slow\n")); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	i := strings.Index(out, "level=WARN")
	if i < 0 || !strings.HasSuffix(out[:i], "\x1b[2A\r\x1b[Jtime=x ") {
		t.Fatalf("log line not printed in place of the erased frame: %q", out)
	}
	if stderr.Len() != 0 {
		t.Errorf("log line went to stderr under a live display: %q", stderr.String())
	}
}

// TestDisplay_FailbackShowsUnderItsNode: a failback (n2 -> n1, of node n1's run
// step) is drawn under n1, the node it goes back to, not under n2.
func TestDisplay_FailbackShowsUnderItsNode(t *testing.T) {
	var buf bytes.Buffer
	d := newDisplay(&buf, true, 200, []string{"n1", "n2"})
	d.Observe(orchestrator.Event{Kind: orchestrator.EventMigrationStarted, RunID: "r1", Node: "n1", VM: "web-1", From: "n2", To: "n1"})
	d.redraw()
	lines := strings.Split(buf.String(), "\n")
	at := map[string]int{}
	for i, l := range lines {
		switch {
		case strings.Contains(l, "web-1"):
			at["vm"] = i
		case strings.Contains(l, " n1 "):
			at["n1"] = i
		case strings.Contains(l, " n2 "):
			at["n2"] = i
		}
	}
	if at["vm"] != at["n1"]+1 {
		t.Errorf("the failback is not drawn under n1:\n%s", buf.String())
	}
}
