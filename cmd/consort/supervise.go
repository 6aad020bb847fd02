package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Restart backoff: the first restart waits minBackoff, each further one
// twice as long up to maxBackoff. A child that ran for healthyRun before
// dying starts over at minBackoff.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	healthyRun = 30 * time.Second
	// stopGrace is how long a child has after SIGTERM before SIGKILL.
	stopGrace = 10 * time.Second
)

// child runs one daemon binary and restarts it when it dies, until stopped.
type child struct {
	name string
	path string
	args []string
	out  io.Writer // the child's stdout and stderr, already prefixed
	log  *slog.Logger
	// grace is how long the child has after SIGTERM before SIGKILL.
	grace time.Duration

	stopOnce sync.Once
	stop     chan struct{} // closed by Stop
	done     chan struct{} // closed when run returns
}

func newChild(name, path string, args []string, out io.Writer, log *slog.Logger) *child {
	return &child{
		name:  name,
		path:  path,
		args:  args,
		out:   out,
		log:   log.With("daemon", name),
		grace: stopGrace,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
}

// run starts the child and restarts it with backoff each time it exits,
// until Stop. It returns once the last process has exited.
func (c *child) run() {
	defer close(c.done)
	backoff := minBackoff
	for {
		started := time.Now()
		cmd := exec.Command(c.path, c.args...)
		cmd.Stdout = c.out
		cmd.Stderr = c.out
		// A process group of its own keeps a terminal's Ctrl-C from
		// reaching the child directly, so the supervisor stops children in
		// order; Pdeathsig takes the child down if the supervisor is
		// killed outright.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		// Output is copied through a pipe; do not wait forever for
		// grandchildren still holding it.
		cmd.WaitDelay = 2 * time.Second
		if err := cmd.Start(); err != nil {
			c.log.Error("start failed", "err", err, "restart_in", backoff)
		} else {
			c.log.Info("started", "pid", cmd.Process.Pid)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				c.flush()
				if time.Since(started) >= healthyRun {
					backoff = minBackoff
				}
				c.log.Warn("exited; restarting", "err", exitText(err), "ran", time.Since(started).Round(time.Millisecond), "restart_in", backoff)
			case <-c.stop:
				c.terminate(cmd, exited)
				c.flush()
				return
			}
		}
		select {
		case <-time.After(backoff):
		case <-c.stop:
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// terminate sends SIGTERM to the child's process group, then SIGKILL
// after c.grace, and waits for the exit.
func (c *child) terminate(cmd *exec.Cmd, exited <-chan error) {
	pid := cmd.Process.Pid
	c.log.Info("stopping", "pid", pid)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case err := <-exited:
		c.log.Info("stopped", "status", exitText(err))
		return
	case <-time.After(c.grace):
	}
	c.log.Warn("no exit after SIGTERM; sending SIGKILL", "grace", c.grace)
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	c.log.Info("killed", "status", exitText(<-exited))
}

// flush writes out a last line the child left without a newline.
func (c *child) flush() {
	if f, ok := c.out.(interface{ Flush() }); ok {
		f.Flush()
	}
}

// Stop ends the child (SIGTERM, then SIGKILL) and waits until it has
// exited. Safe to call more than once.
func (c *child) Stop() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// prefixer writes whole lines to an underlying writer, each led by a name
// column. Writers made by one prefixer share a lock, so lines from
// different children never interleave.
type prefixer struct {
	mu  sync.Mutex // guards w
	w   io.Writer
	pad int // width of the name column
}

// maxLine bounds a buffered partial line; longer lines are split.
const maxLine = 64 << 10

// Writer returns a writer prefixing each line with name.
func (p *prefixer) Writer(name string) io.Writer {
	return &lineWriter{p: p, prefix: []byte(fmt.Sprintf("%-*s | ", p.pad, name))}
}

// lineWriter buffers a partial line until its newline arrives. It is used
// by one child at a time (exec copies one pipe from one goroutine), but a
// lock keeps it safe anyway.
type lineWriter struct {
	p      *prefixer
	prefix []byte
	mu     sync.Mutex // guards buf
	buf    []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			w.buf = append(w.buf, b...)
			if len(w.buf) >= maxLine {
				w.emit(w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		line := b[:i]
		if len(w.buf) > 0 {
			line = append(w.buf, line...)
		}
		w.emit(line)
		w.buf = w.buf[:0]
		b = b[i+1:]
	}
	return n, nil
}

// Flush writes a buffered partial line, if any.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
}

// emit writes one prefixed line. Write errors (a closed terminal) are
// dropped: a child must never stall on its log.
func (w *lineWriter) emit(line []byte) {
	out := make([]byte, 0, len(w.prefix)+len(line)+1)
	out = append(out, w.prefix...)
	out = append(out, line...)
	out = append(out, '\n')
	w.p.mu.Lock()
	_, _ = w.p.w.Write(out)
	w.p.mu.Unlock()
}

// stderrPrefixer prefixes lines written to the supervisor's stderr.
func stderrPrefixer(pad int) *prefixer { return &prefixer{w: os.Stderr, pad: pad} }
