package metrics

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// crashChildEnv makes the test binary the child of TestKillNineKeepsAcknowledgedSamples.
const crashChildEnv = "PAVE_METRICS_CRASH_CHILD"

// TestMain runs the crash child: it opens the store, commits samples one
// append at a time, says which it committed, and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

func crashChild(dir string) {
	s, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	lset := labels.FromStrings("__name__", "crash_test_total", "service", "pay")
	t0 := time.Now().UnixMilli()
	for i := 0; ; i++ {
		app := s.DB().Appender(context.Background())
		if _, err := app.Append(0, lset, t0+int64(i)*1000, float64(i)); err != nil {
			fmt.Println("append:", err)
			os.Exit(2)
		}
		if err := app.Commit(); err != nil {
			fmt.Println("commit:", err)
			os.Exit(2)
		}
		fmt.Printf("committed %d %d\n", i, t0)
		time.Sleep(2 * time.Millisecond)
	}
}

// TestKillNineKeepsAcknowledgedSamples kills a process with the store
// open in the middle of its appends; reopening replays the WAL and every
// committed sample is back. A second store on the same directory is
// refused while the first holds it (the TSDB's lock file).
func TestKillNineKeepsAcknowledgedSamples(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var last, t0 int64 = -1, 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "committed" {
			t.Fatalf("child: %s", sc.Text())
		}
		last, _ = strconv.ParseInt(f[1], 10, 64)
		t0, _ = strconv.ParseInt(f[2], 10, 64)
		if last == 200 {
			if _, err := Open(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "lock") {
				t.Errorf("a second store on a directory in use: %v, want a lock error", err)
			}
			break
		}
	}
	if last != 200 {
		t.Fatalf("the child stopped after %d commits: %v", last+1, sc.Err())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := s.Engine().NewInstantQuery(context.Background(), s.DB(), nil,
		`count_over_time(crash_test_total[1h])`, time.UnixMilli(t0+last*1000))
	if err != nil {
		t.Fatal(err)
	}
	v, err := q.Exec(context.Background()).Vector()
	if err != nil || len(v) != 1 {
		t.Fatalf("after replay: %v %v", v, err)
	}
	if got := int64(v[0].F); got < last+1 {
		t.Fatalf("after kill -9 the WAL replayed %d samples; %d were acknowledged", got, last+1)
	}
}
