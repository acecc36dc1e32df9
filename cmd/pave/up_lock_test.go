package main

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Two `pave up` on one data directory: the second stops at once, before
// it reads anything, naming the first's pid and API address; the first
// keeps serving.
func TestSecondUpOnOneDataDirExitsNamingTheFirst(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	first := startUp(t, data)

	cmd := exec.Command(paveBin(), "up", "--data-dir", data, "--http-addr", freeAddr(t), "--otlp-addr", freeAddr(t), "--gateway-addr", freeAddr(t))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("the second pave up on %s started:\n%s", data, out)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", first.cmd.Process.Pid), first.api, "holds it", "--data-dir"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the second pave up's error lacks %q:\n%s", want, out)
		}
	}
	if took > 10*time.Second {
		t.Errorf("the second pave up took %s to give up; it must exit at once", took)
	}
	if strings.Contains(string(out), "pave is up") {
		t.Errorf("the second pave up served before it gave up:\n%s", out)
	}
	if _, err := pave(t, []string{"PAVE_SERVER=" + first.api}, "ps"); err != nil {
		t.Fatalf("the first pave up stopped answering: %v", err)
	}
	select {
	case <-first.done:
		t.Fatalf("the first pave up exited: %v\n%s", first.err, first.out)
	default:
	}

	// Once the first stops, the directory is free again.
	_ = first.cmd.Process.Kill()
	<-first.done
	startUp(t, data)
}
