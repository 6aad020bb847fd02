package healthd

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/consort-io/consort/pkg/structs"
)

// scriptWaitDelay bounds how long a run waits for the output pipes after
// the script exited or was killed (a grandchild may hold them).
const scriptWaitDelay = time.Second

// scriptCheck runs Args (no shell) as Consul's script checks do: exit 0 is
// passing, 1 warning, anything else critical; the output is the last
// OutputMaxSize bytes of stdout and stderr together. A run past its
// timeout (default 30s) has its whole process group killed and is
// critical ("Timed out (30s) running check"). Only runs when the node
// enables script checks.
type scriptCheck struct {
	args    []string
	timeout time.Duration
	max     int
}

func newScriptCheck(t *structs.CheckType, timeout time.Duration, max int) *scriptCheck {
	return &scriptCheck{args: append([]string(nil), t.Args...), timeout: timeout, max: max}
}

func (s *scriptCheck) run(ctx context.Context) (string, string) {
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(tctx, s.args[0], s.args[1:]...)
	out := newTailBuffer(s.max)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = scriptWaitDelay
	err := cmd.Run()
	output := out.String()
	if out.truncated() {
		output = fmt.Sprintf("Captured %d of %d bytes\n...\n%s", len(out.buf), out.total, output)
	}
	if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		msg := fmt.Sprintf("Timed out (%s) running check", s.timeout)
		if output != "" {
			msg += "\n\n" + output
		}
		return structs.HealthCritical, msg
	}
	if ps := cmd.ProcessState; ps != nil {
		// Also when err is exec.ErrWaitDelay: the script exited, but
		// something it started still held its output.
		switch ps.ExitCode() {
		case 0:
			return structs.HealthPassing, output
		case 1:
			return structs.HealthWarning, output
		}
		return structs.HealthCritical, output
	}
	// It did not start (not found, not executable): say why.
	return structs.HealthCritical, err.Error()
}
