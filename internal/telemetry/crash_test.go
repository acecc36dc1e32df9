package telemetry

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashChildEnv = "PAVE_TELEMETRY_CRASH_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	code := m.Run()
	stopSeaweedFS()
	os.Exit(code)
}

// crashChild ingests as fast as it can from four writers, with small
// flushes and frequent compaction, printing each batch after it is
// acknowledged, until it is killed.
func crashChild(dir string) {
	s, err := Open(context.Background(), Options{Dir: dir, FlushBytes: 128 << 10, FlushInterval: 30 * time.Millisecond,
		MaintainEvery: 70 * time.Millisecond, BlockRows: 500, ColdAfter: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	round := os.Getenv("PAVE_TELEMETRY_CRASH_ROUND")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				batch := make([]Log, 50)
				for i := range batch {
					batch[i] = Log{Time: time.Now(), Service: "crash", Level: "INFO", Message: fmt.Sprintf("r%s-w%d-b%d-i%d", round, g, n, i),
						TraceID: traceID(g*1_000_000 + n), Attrs: AttrsOf(map[string]string{"pad": strings.Repeat("x", 40)})}
				}
				if err := s.AppendLogs(context.Background(), batch); err != nil {
					time.Sleep(time.Millisecond) // busy: retry later, never acknowledged
					n--
					continue
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack r%s-w%d-b%d\n", round, g, n)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestKillDuringIngestKeepsEveryAcknowledgedRecordOnce(t *testing.T) {
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := 1; round <= 2; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("PAVE_TELEMETRY_CRASH_ROUND=%d", round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		killed := false
		deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
		for sc.Scan() {
			line := sc.Text()
			if b, ok := strings.CutPrefix(line, "ack "); ok {
				acked[b] = true
				n++
			}
			if n == 400 && !killed {
				syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
				killed = true
			}
		}
		deadline.Stop()
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child ended after %d acknowledged batches without being killed", round, n)
		}
		t.Logf("round %d: killed after %d acknowledged batches", round, n)
	}

	s := openTest(t, dir, func(o *Options) { o.Now = time.Now })
	seen := map[string]int{}
	cursor := ""
	for {
		res, err := s.Query(context.Background(), Query{Service: "crash", Limit: MaxLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warnings) > 0 {
			t.Fatalf("warnings after crash: %v", res.Warnings)
		}
		for _, l := range res.Logs {
			seen[l.Message]++
		}
		if res.Next == "" {
			break
		}
		cursor = res.Next
	}
	for msg, c := range seen {
		if c != 1 {
			t.Fatalf("record %s stored %d times", msg, c)
		}
	}
	for b := range acked {
		for i := 0; i < 50; i++ {
			if seen[fmt.Sprintf("%s-i%d", b, i)] != 1 {
				t.Fatalf("acknowledged record %s-i%d lost (store holds %d records)", b, i, len(seen))
			}
		}
	}
	// A batch is all or nothing: no partial batches from torn writes.
	batches := map[string]int{}
	for msg := range seen {
		batches[msg[:strings.LastIndex(msg, "-i")]]++
	}
	for b, c := range batches {
		if c != 50 {
			t.Fatalf("batch %s stored %d of 50 records", b, c)
		}
	}
	if st := s.Stats(); st.HotBlocks == 0 {
		t.Fatalf("no block was flushed before the kills; the test did not exercise flush crashes: %+v", st)
	}
	t.Logf("%d acknowledged batches, %d records stored, each once", len(acked), len(seen))
}
