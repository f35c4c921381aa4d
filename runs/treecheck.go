package runs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// bbolt's page layout, as far as the tree check reads it: a 16-byte header (id,
// flags, element count, overflow pages), then 16-byte elements; a leaf element whose
// flags say "bucket" holds a bucket header (root page, sequence), followed, when the
// root is 0, by the bucket's inline page.
const (
	branchPageFlag = 0x01
	leafPageFlag   = 0x02
	bucketLeafFlag = 0x01
	elementSize    = 16
	bucketHeader   = 16
	// maxTreeDepth is far beyond any real state file (a B+tree of depth 10 with
	// 4 KiB pages holds more than the disk) and bounds the walk on a forged one.
	maxTreeDepth = 64
)

// treeWalk walks every bucket's B+tree from the root bucket of the newest meta
// page, as bbolt would, reading through the file and never mapping it. check
// refuses a file whose pages point outside the file or past the pages in use, point
// back at a page already reached (a cycle: bbolt's cursor would loop forever,
// growing its stack until memory runs out), nest deeper than any real tree, or are
// not the page type their parent expects. unsafeBuckets serves repair.
type treeWalk struct {
	f        *os.File
	size     int64
	pageSize int64
	hwm      uint64
	root     uint64
	seen     map[uint64]bool
	// salvage: skip a subtree past the end of the file (bbolt faults there, and
	// guard recovers) and record each top-level bucket with any other problem in
	// unsafe instead of stopping.
	salvage bool
	unsafe  map[string]error
}

// errPastEOF marks a page that lies (partly) past the end of the file.
var errPastEOF = errors.New("past the end of the file")

func newTreeWalk(f *os.File, size int64, m boltMeta) *treeWalk {
	return &treeWalk{f: f, size: size, pageSize: int64(m.pageSize), hwm: m.pgid, root: m.root, seen: map[uint64]bool{}}
}

func (w *treeWalk) check() error {
	return w.page(w.root, 0, 0)
}

// unsafeBuckets names the top-level buckets bbolt must not be let into while
// salvaging (a loop would hang the repair, garbage would be copied as records); an
// error means the root bucket's own tree is unsafe, and nothing is.
func (w *treeWalk) unsafeBuckets() (map[string]error, error) {
	w.salvage, w.unsafe = true, map[string]error{}
	if err := w.page(w.root, 0, 0); err != nil && !errors.Is(err, errPastEOF) {
		return nil, err
	}
	return w.unsafe, nil
}

func (w *treeWalk) page(id uint64, depth, nest int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("its page tree is deeper than %d levels at page %d", maxTreeDepth, id)
	}
	if id < 2 || id >= w.hwm {
		return fmt.Errorf("a page points to page %d, outside the %d pages in use", id, w.hwm)
	}
	if w.seen[id] {
		return fmt.Errorf("page %d is reached twice (a cycle or a shared page)", id)
	}
	head := make([]byte, pageHeader)
	if int64(id)*w.pageSize+pageHeader > w.size {
		return fmt.Errorf("page %d lies %w", id, errPastEOF)
	}
	if _, err := w.f.ReadAt(head, int64(id)*w.pageSize); err != nil {
		return fmt.Errorf("page %d cannot be read: %w", id, err)
	}
	le := binary.LittleEndian
	overflow := uint64(le.Uint32(head[12:]))
	if le.Uint64(head[0:]) != id {
		return fmt.Errorf("page %d says it is page %d", id, le.Uint64(head[0:]))
	}
	if overflow >= w.hwm-id {
		return fmt.Errorf("page %d runs past the %d pages in use", id, w.hwm)
	}
	for p := id; p <= id+overflow; p++ {
		if w.seen[p] {
			return fmt.Errorf("page %d overlaps page %d, already reached", id, p)
		}
		w.seen[p] = true
	}
	span := int64(overflow+1) * w.pageSize
	if int64(id)*w.pageSize+span > w.size {
		return fmt.Errorf("page %d runs %w", id, errPastEOF)
	}
	buf := make([]byte, span)
	if _, err := w.f.ReadAt(buf, int64(id)*w.pageSize); err != nil {
		return fmt.Errorf("page %d cannot be read: %w", id, err)
	}
	return w.elements(buf, fmt.Sprintf("page %d", id), depth, nest)
}

// elements checks the elements of one page (a file page or a bucket's inline page)
// and walks into the pages and buckets they point to.
func (w *treeWalk) elements(buf []byte, name string, depth, nest int) error {
	le := binary.LittleEndian
	flags, count := le.Uint16(buf[8:]), int(le.Uint16(buf[10:]))
	if pageHeader+count*elementSize > len(buf) {
		return fmt.Errorf("%s: %d elements do not fit in it", name, count)
	}
	for i := range count {
		at := pageHeader + i*elementSize
		e := buf[at : at+elementSize]
		switch {
		case flags&branchPageFlag != 0:
			if err := w.page(le.Uint64(e[8:]), depth+1, nest); err != nil && !(w.salvage && errors.Is(err, errPastEOF)) {
				return err
			}
		case flags&leafPageFlag != 0:
			pos, ksize, vsize := uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
			end := uint64(at) + pos + ksize + vsize
			if end > uint64(len(buf)) {
				return fmt.Errorf("%s: element %d runs past the page", name, i)
			}
			if le.Uint32(e[0:])&bucketLeafFlag == 0 {
				continue
			}
			key := buf[uint64(at)+pos : uint64(at)+pos+ksize]
			err := w.bucket(buf[uint64(at)+pos+ksize:end], fmt.Sprintf("%s, bucket %q", name, key), depth+1, nest+1)
			switch {
			case err == nil, w.salvage && errors.Is(err, errPastEOF):
			case w.salvage && nest == 0:
				w.unsafe[string(key)] = err
			default:
				return err
			}
		default:
			return fmt.Errorf("%s is neither a branch nor a leaf page (flags %#x) where the tree expects one", name, flags)
		}
	}
	return nil
}

// bucket walks into the bucket whose header and inline page are value.
func (w *treeWalk) bucket(value []byte, name string, depth, nest int) error {
	le := binary.LittleEndian
	if len(value) < bucketHeader {
		return fmt.Errorf("%s has no bucket header", name)
	}
	if root := le.Uint64(value[0:]); root != 0 {
		return w.page(root, depth, nest)
	}
	inline := value[bucketHeader:]
	if len(inline) < pageHeader {
		return fmt.Errorf("%s is an inline bucket without its page", name)
	}
	if depth > maxTreeDepth {
		return fmt.Errorf("its buckets nest deeper than %d levels at %s", maxTreeDepth, name)
	}
	return w.elements(inline, name, depth, nest)
}
