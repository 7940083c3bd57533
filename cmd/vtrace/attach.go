package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/vtrace/vtrace/tracer"
)

// attachExitTable is `vtrace attach`'s exit status contract (README.md
// "Exit status", attach rows; keep both in step).
const attachExitTable = `Exit status:
  0      no violation, and vtrace let the process go (Ctrl-C, SIGTERM,
         SIGHUP or --timeout): it runs on, untraced
  0-255  no violation, and the process ended while attached: its own exit
         status, or 128+N if signal N killed it (as with run)
  1      at least one violation (--error-exitcode N: N instead)
  124    no violation seen, but --max-steps or --max-vforks ended the trace
         (the process was let go) — not a full check
  74     the log could not be created or written
  125    usage error (nothing was attached)
  126    could not attach: ptrace refused (kernel.yama.ptrace_scope,
         CAP_SYS_PTRACE, already traced, a kernel thread), an internal error
         (vtrace still not finished 2 s after --timeout or a signal: the
         kernel kills the process as vtrace exits, as on SIGKILL)
  127    no such process`

func newAttachCmd(stdout, stderr io.Writer) *cobra.Command {
	o := runOptions{timeout: tracer.DefaultTimeout}
	cmd := &cobra.Command{
		Use:   "attach [flags] PID",
		Short: "trace a running process from now on, following every vfork; let it go on Ctrl-C",
		Long: `Attach to the running process PID (every thread it has), follow its vforks from
now on exactly as run does — the same stories, report, log and evidence files —
until it ends, or until Ctrl-C (SIGINT, SIGTERM, SIGHUP), --timeout or a budget:
vtrace then removes every breakpoint and watchpoint, lets go a vfork parent or
child it held, detaches from every thread and leaves the process running
(a process stopped by job control stays stopped). vtrace never kills an
attached process; if vtrace itself is killed with SIGKILL, the kernel kills it
(PTRACE_O_EXITKILL, as for run: an int3 vtrace had planted would kill it
anyway).

ptrace must be allowed: kernel.yama.ptrace_scope 0, or CAP_SYS_PTRACE (root)
with ptrace_scope 1 or 2; a process already traced (by gdb, strace, another
vtrace) cannot be attached to.

` + attachExitTable,
		Example: `  vtrace attach 4242                    # until Ctrl-C; exit 0 if no violation
  vtrace attach --timeout 10m -o a.jsonl 4242
  vtrace attach --json $(pidof make) | jq .`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{"attach: want one PID"}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return attachTrace(cmd.Context(), &o, args[0], stdout, stderr)
		},
	}
	o.addFlags(cmd.Flags(), true)
	return cmd
}

// attachTrace is `vtrace attach`: run's sinks, log and exit status over an
// engine run that attaches instead of starting a program.
func attachTrace(ctx context.Context, o *runOptions, pidArg string, stdout, stderr io.Writer) error {
	o.onBudget = "detach" // an attached process is always let go
	if err := o.check(); err != nil {
		return err
	}
	pid, err := strconv.Atoi(pidArg)
	if err != nil || pid <= 0 {
		return usageError{fmt.Sprintf("attach %q: want a process id", pidArg)}
	}
	stdout, stderr = lockedWriter(stdout), lockedWriter(stderr)
	colored, err := wantColor(o.colorMode, stderr)
	if err != nil {
		return err
	}
	log, err := openLog(o, "", false, stdout)
	if err != nil {
		return err
	}
	ts := o.newSinks(log, colored, stderr)
	if ctx.Err() != nil { // interrupted before vtrace attached
		_ = log.fail(fmt.Errorf("before vtrace attached: %w", context.Cause(ctx)), ts.sum)
		return exitStatus(exitSignal + interruptSignal(ctx, nil))
	}
	cfg := o.engineConfig(ts, -1)
	cfg.AttachPID = pid
	guardSinks(&cfg, ts, log, stderr) // watchdog.go
	res, err := tracer.Run(ctx, cfg)
	return o.end(ctx, ts, log, res, err, stderr)
}
