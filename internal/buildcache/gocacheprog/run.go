package gocacheprog

import (
	"io"
	"os/signal"
	"syscall"
)

// Run is the whole GOCACHEPROG program: options from the environment, the
// client, and the protocol on stdin/stdout until the go command closes it.
// Both `pave cache gocacheprog` and the small pave-gocacheprog binary call
// it; the latter starts in milliseconds (the go command waits for a cache
// program's first line before it builds anything, once per go command).
func Run(stdin io.Reader, stdout, stderr io.Writer) error {
	o, err := ClientOptionsFromEnv()
	if err != nil {
		return err
	}
	o.Stderr = stderr
	c, err := NewClient(o)
	if err != nil {
		return err
	}
	// SIGINT reaches the whole process group when a build is interrupted;
	// the go command then closes our stdin, which ends Serve.
	signal.Ignore(syscall.SIGINT)
	return c.Serve(stdin, stdout)
}
