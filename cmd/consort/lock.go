package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/urfave/cli/v2"
)

// Timing of `consort lock`, as `consul lock`.
const (
	// lockKillGrace is how long a child has between SIGTERM and SIGKILL
	// once the lock is lost or consort lock is interrupted. It is well
	// under the default lock-delay (15 s), so the child is gone before
	// another holder can acquire the lock.
	lockKillGrace = 5 * time.Second
	// lockMonitorRetries and lockMonitorRetryTime let the lock monitor
	// ride out brief 500s (a leader election) before calling the lock lost.
	lockMonitorRetries   = 3
	lockMonitorRetryTime = time.Second
)

// lockOptions are the lock command's flags and arguments.
type lockOptions struct {
	Prefix       string
	Command      []string // one element: run by sh -c; more: executed directly
	Limit        int      // 1: a lock; more: a semaphore with that many slots
	Name         string   // session name; empty: derived from the command
	HTTPAddr     string   // the Consul HTTP API, host:port or a URL
	Token        string
	Timeout      time.Duration // 0: wait for the lock forever
	MonitorRetry int
	PassStdin    bool
	Grace        time.Duration // SIGTERM → SIGKILL; 0: lockKillGrace

	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

func lockCommand() *cli.Command {
	return &cli.Command{
		Name:      "lock",
		Usage:     "run a command while holding a lock (or one of -n semaphore slots)",
		ArgsUsage: "<prefix> <command…>",
		Description: "Acquires the lock at <prefix>/.lock (or a slot of the semaphore under\n" +
			"<prefix> when -n is above 1) through the Consul HTTP API, runs the command\n" +
			"while holding it and releases it when the command exits. A single command\n" +
			"argument runs under sh -c; several are executed directly. If the lock is\n" +
			"lost (session invalidated, key taken), the command gets SIGTERM and, 5 s\n" +
			"later, SIGKILL. Ctrl-C stops the command the same way and releases the\n" +
			"lock. The exit status is the command's (128+n when a signal ended it).\n" +
			"The command sees CONSUL_LOCK_HELD=true in its environment.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "n", Value: 1, Usage: "number of holders allowed at once; above 1 uses a semaphore"},
			&cli.StringFlag{Name: "name", Usage: "session name (default: derived from the command)"},
			&cli.StringFlag{Name: "http-addr", Value: "127.0.0.1:8500", EnvVars: []string{"CONSUL_HTTP_ADDR"}, Usage: "address of the Consul HTTP API"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"CONSUL_HTTP_TOKEN"}, Usage: "ACL token"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up waiting for the lock after this long (default: wait forever)"},
			&cli.IntFlag{Name: "monitor-retry", Value: lockMonitorRetries, Usage: "500 errors tolerated while watching the lock before calling it lost"},
			&cli.BoolFlag{Name: "pass-stdin", Usage: "give the command this process's standard input"},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) < 2 {
				return cli.Exit("consort lock: a key prefix and a command are required: consort lock [options] <prefix> <command…>", 1)
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			code, err := runLock(ctx, lockOptions{
				Prefix:       args[0],
				Command:      args[1:],
				Limit:        c.Int("n"),
				Name:         c.String("name"),
				HTTPAddr:     c.String("http-addr"),
				Token:        c.String("token"),
				Timeout:      c.Duration("timeout"),
				MonitorRetry: c.Int("monitor-retry"),
				PassStdin:    c.Bool("pass-stdin"),
				Stdin:        os.Stdin,
				Stdout:       c.App.Writer,
				Stderr:       c.App.ErrWriter,
			})
			if err != nil {
				return cli.Exit("consort lock: "+err.Error(), max(code, 1))
			}
			if code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

// locker is what a lock and a semaphore have in common.
type locker struct {
	acquire func(stop <-chan struct{}) (<-chan struct{}, error)
	release func() error
	destroy func() error // removes the lock's keys unless others use them
	inUse   error        // destroy's error when others use the keys
}

// validate checks the options before anything is contacted; the prefix
// is expected without its leading slash.
func (o lockOptions) validate() error {
	var errs []error
	if o.Prefix == "" {
		errs = append(errs, errors.New("the key prefix is empty"))
	}
	if len(o.Command) == 0 || (len(o.Command) == 1 && strings.TrimSpace(o.Command[0]) == "") {
		errs = append(errs, errors.New("no command to run"))
	}
	if o.Limit < 1 {
		errs = append(errs, fmt.Errorf("-n %d: the number of holders must be at least 1", o.Limit))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("-timeout %s: must not be negative", o.Timeout))
	}
	if o.MonitorRetry < 0 {
		errs = append(errs, fmt.Errorf("-monitor-retry %d: must not be negative", o.MonitorRetry))
	}
	return errors.Join(errs...)
}

// runLock acquires the lock, runs the command while holding it and
// releases it. It returns the exit status to use: the child's, or 1 with
// an error when the lock could not be had. It blocks until the child has
// exited and the lock is released; cancelling ctx (Ctrl-C) stops the
// child (SIGTERM, then SIGKILL after the grace period) or the wait for the
// lock.
func runLock(ctx context.Context, o lockOptions) (int, error) {
	// As consul lock: "/svc/leader" and "svc/leader" are one lock.
	o.Prefix = strings.TrimPrefix(o.Prefix, "/")
	if err := o.validate(); err != nil {
		return 1, err
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.Grace <= 0 {
		o.Grace = lockKillGrace
	}
	if o.Name == "" {
		o.Name = fmt.Sprintf("Consul lock for '%s' at '%s'", strings.Join(o.Command, " "), o.Prefix)
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Stderr, "consort lock: "+format+"\n", args...) }

	client, err := api.NewClient(&api.Config{Address: o.HTTPAddr, Token: o.Token})
	if err != nil {
		return 1, fmt.Errorf("consul api client for %s: %w", o.HTTPAddr, err)
	}
	// As consul lock: fail at once, with the address, when nobody answers.
	if _, err := client.Agent().NodeName(); err != nil {
		return 1, fmt.Errorf("query the agent at %s: %w", o.HTTPAddr, err)
	}
	lk, err := newLocker(client, o)
	if err != nil {
		return 1, err
	}

	if o.Limit == 1 {
		say("waiting for lock on %s…", o.Prefix)
	} else {
		say("waiting for one of %d slots on %s…", o.Limit, o.Prefix)
	}
	stop := make(chan struct{})
	stopped := context.AfterFunc(ctx, func() { close(stop) })
	defer stopped()
	lost, err := lk.acquire(stop)
	switch {
	case err != nil:
		return 1, fmt.Errorf("acquire lock on %s: %w", o.Prefix, err)
	case lost == nil && ctx.Err() != nil:
		return 1, errors.New("interrupted while waiting for the lock")
	case lost == nil:
		return 1, fmt.Errorf("lock on %s not acquired within -timeout %s", o.Prefix, o.Timeout)
	}
	say("lock acquired")

	code := 0
	var runErr error
	if ctx.Err() != nil {
		// Interrupted as the lock came: release it without running anything.
		code, runErr = 1, errors.New("interrupted while acquiring the lock; the command did not run")
	} else if ch, err := startChild(o); err != nil {
		code, runErr = 1, err
	} else {
		code = superviseChild(ctx, ch, lost, o.Grace, say)
	}
	wasLost := false
	select {
	case <-lost:
		wasLost = true
	default:
	}

	if err := lk.release(); err != nil && !errors.Is(err, api.ErrLockNotHeld) && !errors.Is(err, api.ErrSemaphoreNotHeld) {
		say("release lock: %v", err)
		if runErr == nil && code == 0 {
			code = 1
		}
	} else if !wasLost {
		say("lock released")
	}
	if err := lk.destroy(); err != nil && !errors.Is(err, lk.inUse) {
		// Only tidying: the key stays, unlocked.
		say("clean up lock keys: %v", err)
	}
	return code, runErr
}

// newLocker sets up the Consul client's Lock (Limit 1, key <prefix>/.lock,
// so a lock and a semaphore on one prefix conflict visibly) or Semaphore.
func newLocker(client *api.Client, o lockOptions) (*locker, error) {
	if o.Limit == 1 {
		opts := &api.LockOptions{
			Key:              path.Join(o.Prefix, api.DefaultSemaphoreKey),
			SessionName:      o.Name,
			MonitorRetries:   o.MonitorRetry,
			MonitorRetryTime: lockMonitorRetryTime,
		}
		if o.Timeout > 0 {
			opts.LockTryOnce, opts.LockWaitTime = true, o.Timeout
		}
		l, err := client.LockOpts(opts)
		if err != nil {
			return nil, fmt.Errorf("set up lock: %w", err)
		}
		return &locker{acquire: l.Lock, release: l.Unlock, destroy: l.Destroy, inUse: api.ErrLockInUse}, nil
	}
	opts := &api.SemaphoreOptions{
		Prefix:           o.Prefix,
		Limit:            o.Limit,
		SessionName:      o.Name,
		MonitorRetries:   o.MonitorRetry,
		MonitorRetryTime: lockMonitorRetryTime,
	}
	if o.Timeout > 0 {
		opts.SemaphoreTryOnce, opts.SemaphoreWaitTime = true, o.Timeout
	}
	s, err := client.SemaphoreOpts(opts)
	if err != nil {
		return nil, fmt.Errorf("set up semaphore: %w", err)
	}
	return &locker{acquire: s.Acquire, release: s.Release, destroy: s.Destroy, inUse: api.ErrSemaphoreInUse}, nil
}

// lockChild is the command consort lock runs.
type lockChild struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once waited for
}

// startChild starts the command in a process group of its own, so that
// stopping it reaches everything it started (a shell's children too).
func startChild(o lockOptions) (*lockChild, error) {
	var cmd *exec.Cmd
	if len(o.Command) == 1 {
		cmd = exec.Command("/bin/sh", "-c", o.Command[0])
	} else {
		cmd = exec.Command(o.Command[0], o.Command[1:]...)
	}
	cmd.Env = append(os.Environ(), "CONSUL_LOCK_HELD=true")
	if o.PassStdin {
		cmd.Stdin = o.Stdin
	}
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", strings.Join(o.Command, " "), err)
	}
	ch := &lockChild{cmd: cmd, done: make(chan struct{})}
	go func() {
		// The status is read from cmd.ProcessState after done.
		_ = cmd.Wait()
		close(ch.done)
	}()
	return ch, nil
}

// signal sends sig to the child's process group. An error means the
// group is gone already.
func (ch *lockChild) signal(sig syscall.Signal) {
	_ = syscall.Kill(-ch.cmd.Process.Pid, sig)
}

// exitCode is the child's status as a shell reports it: its exit code, or
// 128 + the signal that ended it. Call after done is closed.
func (ch *lockChild) exitCode() int {
	st := ch.cmd.ProcessState
	if st == nil {
		return 1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// stop sends SIGTERM to the child's group and SIGKILL after grace, and
// returns once the child has exited.
func (ch *lockChild) stop(grace time.Duration, say func(string, ...any)) {
	ch.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-ch.done:
		return
	case <-t.C:
	}
	say("command still running %s after SIGTERM, sending SIGKILL", grace)
	ch.signal(syscall.SIGKILL)
	<-ch.done
}

// superviseChild waits until the child exits, the lock is lost or ctx
// ends, stopping the child in the last two cases; SIGHUP, SIGUSR1 and
// SIGUSR2 are passed on to it. It returns the child's exit status.
func superviseChild(ctx context.Context, ch *lockChild, lost <-chan struct{}, grace time.Duration, say func(string, ...any)) int {
	fwd := make(chan os.Signal, 4)
	signal.Notify(fwd, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(fwd)
	for {
		select {
		case <-ch.done:
			return ch.exitCode()
		case s := <-fwd:
			if sig, ok := s.(syscall.Signal); ok {
				ch.signal(sig)
			}
		case <-lost:
			say("lock lost, stopping child")
			ch.stop(grace, say)
			return ch.exitCode()
		case <-ctx.Done():
			say("interrupted, stopping child")
			ch.stop(grace, say)
			return ch.exitCode()
		}
	}
}
