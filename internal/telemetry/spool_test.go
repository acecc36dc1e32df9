package telemetry

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// recordingSink records what a Spool replays, refusing while busy is set.
type recordingSink struct {
	mu   sync.Mutex
	busy bool
	got  []Log
	hits int
}

func (r *recordingSink) AppendLogs(_ context.Context, logs []Log) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits++
	if r.busy {
		return ErrBusy
	}
	r.got = append(r.got, logs...)
	return nil
}

func spoolLogs(from, n int) []Log {
	out := make([]Log, n)
	for i := range out {
		k := from + i
		out[i] = Log{Time: t0.Add(time.Duration(k) * time.Millisecond), Service: "orders", Level: "INFO", Kind: "access",
			Message: fmt.Sprintf("GET /v1/pay #%d", k), TraceID: traceID(k), SpanID: spanID(k), Status: 200,
			Attrs: Attrs{{Key: "source", Value: "gateway"}}}
	}
	return out
}

func openSpoolTest(t *testing.T, dir string, bound int64) *Spool {
	t.Helper()
	sp, err := OpenSpool(dir, bound, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func checkSequence(t *testing.T, got []Log, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d records replayed, want %d", len(got), n)
	}
	for i, l := range got {
		if want := fmt.Sprintf("GET /v1/pay #%d", i); l.Message != want || l.TraceID != traceID(i) || !l.Time.Equal(t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("record %d is %q (trace %s), want %q in order", i, l.Message, l.TraceID, want)
		}
	}
}

func TestSpoolReplaysInOrderAfterTheSinkRecovers(t *testing.T) {
	dir := t.TempDir()
	sp := openSpoolTest(t, dir, 64<<20)
	sink := &recordingSink{busy: true}
	for b := 0; b < 30; b++ { // several segments' worth of batches of various sizes
		if err := sp.Put(spoolLogs(b*(b+1)/2*40, (b+1)*40)); err != nil {
			t.Fatal(err)
		}
	}
	total := 30 * 31 / 2 * 40
	if n, _ := sp.Pending(); n != int64(total) {
		t.Fatalf("pending %d, want %d", n, total)
	}
	if _, err := sp.Replay(context.Background(), sink); !errors.Is(err, ErrBusy) {
		t.Fatalf("replay into a busy sink: %v, want ErrBusy", err)
	}
	if n, _ := sp.Pending(); n != int64(total) {
		t.Fatalf("a refused replay left %d pending, want %d", n, total)
	}
	sink.busy = false
	n, err := sp.Replay(context.Background(), sink)
	if err != nil || n != total {
		t.Fatalf("replay stored %d (%v), want %d", n, err, total)
	}
	checkSequence(t, sink.got, total)
	if n, b := sp.Pending(); n != 0 || b != 0 {
		t.Fatalf("after replay %d records / %d bytes pending", n, b)
	}
	// Nothing is replayed twice, and emptied segments are gone.
	if n, err := sp.Replay(context.Background(), sink); n != 0 || err != nil {
		t.Fatalf("second replay stored %d (%v)", n, err)
	}
	segs, _ := listSegments(dir)
	if len(segs) > 1 {
		t.Fatalf("%d segments left after a full replay: %v", len(segs), segs)
	}
	// Records put after a replay follow on.
	if err := sp.Put(spoolLogs(total, 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Replay(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, sink.got, total+5)
}

func TestSpoolCountsWhatItsBoundLoses(t *testing.T) {
	sp := openSpoolTest(t, t.TempDir(), 4<<10)
	put, lost := 0, 0
	for i := 0; i < 100; i++ {
		err := sp.Put(spoolLogs(i, 1))
		switch {
		case err == nil:
			put++
		case errors.Is(err, ErrSpoolFull):
			lost++
		default:
			t.Fatal(err)
		}
	}
	if put == 0 || lost == 0 {
		t.Fatalf("%d kept, %d lost: the 4 KiB bound should keep some and lose the rest", put, lost)
	}
	if sp.Lost() != uint64(lost) {
		t.Fatalf("Lost() = %d, %d were refused", sp.Lost(), lost)
	}
	if v := testutil.ToFloat64(metricOf(sp, "pave_access_spool_lost_records_total")); v != float64(lost) {
		t.Fatalf("lost metric %v, want %d", v, lost)
	}
	// Once replayed, the room is there again.
	sink := &recordingSink{}
	if n, err := sp.Replay(context.Background(), sink); err != nil || n != put {
		t.Fatalf("replay stored %d (%v), want %d", n, err, put)
	}
	if err := sp.Put(spoolLogs(1000, 1)); err != nil {
		t.Fatalf("put after the spool emptied: %v", err)
	}
}

// metricOf picks one metric of a collector by name.
func metricOf(c prometheus.Collector, name string) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		all := make(chan prometheus.Metric, 16)
		c.Collect(all)
		close(all)
		for m := range all {
			if strings.Contains(m.Desc().String(), `"`+name+`"`) {
				ch <- m
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// TestSpoolStoresEachRecordOnceAcrossACrashAfterTheStoreAcknowledged puts
// the spool back as it was before a replay (the cursor write lost to a
// crash after the store acknowledged): the next replay finds the batch in
// the store and does not store it again.
func TestSpoolStoresEachRecordOnceAcrossACrashAfterTheStoreAcknowledged(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	sp, err := OpenSpool(spoolDir, 64<<20, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 4; b++ {
		if err := sp.Put(spoolLogs(b*100, 100)); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()
	snapshot := filepath.Join(dir, "snapshot")
	copyDir(t, spoolDir, snapshot)

	store := openTest(t, filepath.Join(dir, "store"), nil)
	sp, err = OpenSpool(spoolDir, 64<<20, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sp.Replay(context.Background(), store); err != nil || n != 400 {
		t.Fatalf("replay stored %d (%v), want 400", n, err)
	}
	sp.Close()
	// The crash: the store kept the batch, the spool's cursor did not move.
	os.RemoveAll(spoolDir)
	copyDir(t, snapshot, spoolDir)
	// …and more records spooled after the restart.
	sp = openSpoolTest(t, spoolDir, 64<<20)
	if err := sp.Put(spoolLogs(400, 50)); err != nil {
		t.Fatal(err)
	}
	if n, err := sp.Replay(context.Background(), store); err != nil || n != 50 {
		t.Fatalf("replay after the crash stored %d (%v), want only the 50 new records", n, err)
	}
	logs := allLogs(t, store, "orders")
	seen := map[string]int{}
	for _, l := range logs {
		seen[l.Message]++
	}
	if len(logs) != 450 || len(seen) != 450 {
		t.Fatalf("store holds %d records, %d distinct; want 450 each once", len(logs), len(seen))
	}
}

// allLogs pages through every record of service.
func allLogs(t *testing.T, s Store, service string) []Log {
	t.Helper()
	var out []Log
	cursor := ""
	for {
		res, err := s.Query(context.Background(), Query{Service: service, Limit: MaxLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res.Logs...)
		if res.Next == "" {
			return out
		}
		cursor = res.Next
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSpoolCutsATornLastRecord(t *testing.T) {
	dir := t.TempDir()
	sp, err := OpenSpool(dir, 64<<20, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Put(spoolLogs(0, 10)); err != nil {
		t.Fatal(err)
	}
	sp.Close()
	segs, _ := listSegments(dir)
	f, err := os.OpenFile(filepath.Join(dir, segmentName(segs[len(segs)-1])), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9}) // a frame cut short
	f.Close()
	sp = openSpoolTest(t, dir, 64<<20)
	if err := sp.Put(spoolLogs(10, 5)); err != nil {
		t.Fatal(err)
	}
	sink := &recordingSink{}
	if _, err := sp.Replay(context.Background(), sink); err != nil {
		t.Fatal(err)
	}
	checkSequence(t, sink.got, 15)
}

const spoolChildEnv = "PAVE_TELEMETRY_SPOOL_CHILD"

// spoolChild spills single records as fast as it can, printing each
// index once Put returned, until it is killed.
func spoolChild(dir string) {
	sp, err := OpenSpool(dir, 1<<30, discardLogger())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := sp.Put(spoolLogs(i, 1)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(w, "put %d\n", i)
		if i%64 == 0 {
			w.Flush()
		}
	}
}

// TestKillDuringSpillReplaysEverySpilledRecordOnce kills (SIGKILL) a
// process spilling records and replays its spool into a real store: every
// record whose Put returned is stored, once, in order.
func TestKillDuringSpillReplaysEverySpilledRecordOnce(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), spoolChildEnv+"="+spoolDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		fmt.Sscanf(sc.Text(), "put %d", &acked)
		if acked >= 3000 {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() { // what it printed before dying was acknowledged too
		fmt.Sscanf(sc.Text(), "put %d", &acked)
	}
	cmd.Wait()
	if acked < 3000 {
		t.Fatalf("the child acknowledged only %d records", acked)
	}

	store := openTest(t, filepath.Join(dir, "store"), nil)
	sp := openSpoolTest(t, spoolDir, 1<<30)
	n, err := sp.Replay(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	if n <= acked {
		t.Fatalf("replayed %d records, at least %d were acknowledged", n, acked+1)
	}
	logs := allLogs(t, store, "orders")
	if len(logs) != n {
		t.Fatalf("store holds %d records, %d replayed", len(logs), n)
	}
	seen := map[string]bool{}
	for _, l := range logs {
		if seen[l.Message] {
			t.Fatalf("%q stored twice", l.Message)
		}
		seen[l.Message] = true
	}
	for i := 0; i <= acked; i++ {
		if !seen[fmt.Sprintf("GET /v1/pay #%d", i)] {
			t.Fatalf("acknowledged record %d is missing after the kill", i)
		}
	}
}

func init() {
	if dir := os.Getenv(spoolChildEnv); dir != "" {
		spoolChild(dir)
	}
}
