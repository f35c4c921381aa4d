package runs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ExportFormat names the first line of an export (`drover state export`).
const ExportFormat = "drover-state-export/1"

// exportLine is one line of an export: the header, a bucket with its sequence, or
// one record of a bucket. Keys and values are bytes as stored (base64 in JSON):
// journal keys are binary, and a quarantined record may be anything.
type exportLine struct {
	Format string   `json:"format,omitempty"`
	Schema string   `json:"schema,omitempty"`
	Bucket []string `json:"bucket,omitempty"`
	Seq    *uint64  `json:"seq,omitempty"`
	Key    []byte   `json:"key,omitempty"`
	Value  []byte   `json:"value,omitempty"`
}

// ExportStats counts what an export or import carried.
type ExportStats struct {
	Buckets int `json:"buckets"`
	Records int `json:"records"`
	Runs    int `json:"runs"`
}

// Export writes every bucket and record of the store to w, one JSON object a line,
// from one consistent read (a bbolt transaction, or one etcd revision).
func (s *Store) Export(w io.Writer) (ExportStats, error) {
	var st ExportStats
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(exportLine{Format: ExportFormat, Schema: schemaVersion}); err != nil {
		return st, err
	}
	err := s.View(func(tx *Tx) error {
		st = ExportStats{}
		var walk func(b bucket) error
		walk = func(b bucket) error {
			seq, err := tx.kv.sequence(b)
			if err != nil {
				return fmt.Errorf("bucket %v: %w", []string(b), err)
			}
			if err := enc.Encode(exportLine{Bucket: b, Seq: &seq}); err != nil {
				return err
			}
			st.Buckets++
			if err := tx.kv.forEach(b, func(k string, v []byte) error {
				st.Records++
				if len(b) == 1 && b[0] == bucketRuns {
					st.Runs++
				}
				return enc.Encode(exportLine{Bucket: b, Key: []byte(k), Value: v})
			}); err != nil {
				return err
			}
			names, err := tx.kv.buckets(b)
			if err != nil {
				return err
			}
			slices.Sort(names)
			for _, n := range names {
				if err := walk(append(slices.Clone(b), n)); err != nil {
					return err
				}
			}
			return nil
		}
		top, err := tx.kv.buckets(nil)
		if err != nil {
			return err
		}
		slices.Sort(top)
		for _, n := range top {
			if err := walk(bk(n)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("export %s: %w", s.path, err)
	}
	return st, bw.Flush()
}

// ErrImportRefused: the export cannot be read, or the store cannot take it (it
// holds runs, or replicas run on it): nothing was written.
var ErrImportRefused = errors.New("import refused")

// importBatch bounds the records written per transaction into etcd, whose server
// refuses transactions of more than 128 operations by default (--max-txn-ops).
const importBatch = 50

// maxExportLine bounds one line of an export (a run with its plan is a few KiB).
const maxExportLine = 16 << 20

// Import reads an export into this store, which must hold no run yet. Into bbolt it
// is one transaction; into etcd it is written in batches, and on failure everything
// under the prefix is deleted again, so that nothing is left half-imported.
func (s *Store) Import(ctx context.Context, r io.Reader) (ExportStats, error) {
	var st ExportStats
	lines, err := readExport(r)
	if err != nil {
		return st, fmt.Errorf("%w: %w", ErrImportRefused, err)
	}
	var existing int
	if err := s.View(func(tx *Tx) error {
		return tx.kv.forEach(bk(bucketRuns), func(string, []byte) error { existing++; return nil })
	}); err != nil {
		return st, err
	}
	if existing > 0 {
		return st, fmt.Errorf("%w: %s already holds %d runs; import into an empty store (a new state file, or an unused ha.etcd.prefix)", ErrImportRefused, s.path, existing)
	}
	eb, isEtcd := s.be.(*etcdBackend)
	if isEtcd {
		g, err := eb.cli.Get(ctx, eb.prefix+"/ha/replicas/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return st, fmt.Errorf("import into %s: %w", s.path, err)
		}
		if g.Count > 0 {
			return st, fmt.Errorf("%w: %d drover serve replicas are running on %s; stop them first", ErrImportRefused, g.Count, s.path)
		}
	}
	apply := func(tx *Tx, batch []exportLine) error {
		for _, l := range batch {
			if l.Seq != nil {
				if err := tx.kv.createBucket(l.Bucket, false); err != nil {
					return fmt.Errorf("bucket %v: %w", l.Bucket, err)
				}
				if err := tx.kv.setSequence(l.Bucket, *l.Seq); err != nil {
					return err
				}
				continue
			}
			if err := tx.kv.put(l.Bucket, string(l.Key), l.Value); err != nil {
				return fmt.Errorf("record %q of bucket %v: %w", l.Key, l.Bucket, err)
			}
		}
		return nil
	}
	size := len(lines)
	if isEtcd {
		size = importBatch
	}
	for start := 0; start < len(lines); start += size {
		batch := lines[start:min(start+size, len(lines))]
		if err := s.Update(func(tx *Tx) error { return apply(tx, batch) }); err != nil {
			if isEtcd && start > 0 {
				if _, derr := eb.cli.Delete(context.WithoutCancel(ctx), eb.prefix+"/", clientv3.WithPrefix()); derr != nil {
					return st, fmt.Errorf("import into %s: %w; removing the part imported failed too (%v): delete the keys under %s/ with etcdctl", s.path, err, derr, eb.prefix)
				}
			}
			return st, fmt.Errorf("import into %s: %w (nothing was imported)", s.path, err)
		}
	}
	for _, l := range lines {
		switch {
		case l.Seq != nil:
			st.Buckets++
		default:
			st.Records++
			if len(l.Bucket) == 1 && l.Bucket[0] == bucketRuns {
				st.Runs++
			}
		}
	}
	return st, nil
}

// readExport reads and checks an export: the header, then buckets before their
// records, names of known top-level buckets, no deeper nesting than the store has.
func readExport(r io.Reader) ([]exportLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxExportLine)
	var out []exportLine
	seen := map[string]bool{}
	known := append(slices.Clone(topBuckets), bucketQuarantine)
	n := 0
	for sc.Scan() {
		n++
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("export line %d: not JSON (%v); give a file written by drover state export", n, err)
		}
		if n == 1 {
			if l.Format != ExportFormat {
				return nil, fmt.Errorf("export line 1: format %q, want %q; give a file written by drover state export", l.Format, ExportFormat)
			}
			if l.Schema != schemaVersion {
				return nil, fmt.Errorf("export line 1: schema %q, this drover reads %s; import it with a matching drover", l.Schema, schemaVersion)
			}
			continue
		}
		switch {
		case len(l.Bucket) == 0 || len(l.Bucket) > 2:
			return nil, fmt.Errorf("export line %d: bucket %v: want one or two names", n, l.Bucket)
		case !slices.Contains(known, l.Bucket[0]):
			return nil, fmt.Errorf("export line %d: unknown bucket %q", n, l.Bucket[0])
		case slices.Contains(l.Bucket, ""):
			return nil, fmt.Errorf("export line %d: empty bucket name", n)
		}
		key := fmt.Sprintf("%q", l.Bucket)
		if l.Seq != nil {
			if len(l.Bucket) == 2 && !seen[fmt.Sprintf("%q", l.Bucket[:1])] {
				return nil, fmt.Errorf("export line %d: bucket %v before its parent", n, l.Bucket)
			}
			seen[key] = true
		} else if !seen[key] {
			return nil, fmt.Errorf("export line %d: a record of bucket %v before the bucket", n, l.Bucket)
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the export: %w", err)
	}
	if n == 0 {
		return nil, errors.New("the export is empty; give a file written by drover state export")
	}
	return out, nil
}
