package demo

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a child process whose output lines are kept (and written to a log file), stopped
// by the Cleanup of whoever started it: SIGTERM, then SIGKILL after a grace period.
type Process struct {
	Name    string
	LogFile string

	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	mu     sync.Mutex
	lines  []string
	notify chan struct{} // closed and replaced on every new line
}

// StartProcess starts bin with args; every output line goes to logFile and, when echo is set,
// to echo (e.g. the demo's "app |" prefix).
func StartProcess(t TB, name, logFile string, echo func(line string), bin string, args ...string) *Process {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	// Die with us if we are killed: nothing started here outlives the demo or the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &Process{Name: name, LogFile: logFile, cmd: cmd, done: make(chan struct{}), notify: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("demo: starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(f, line) // the log file is a copy: p.lines holds every line
			if echo != nil {
				echo(line)
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.notify)
			p.notify = make(chan struct{})
			p.mu.Unlock()
		}
		_ = f.Close()
	}()
	go func() {
		p.err = cmd.Wait()
		_ = pw.Close()
		close(p.done)
	}()
	t.Cleanup(p.Stop)
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process (SIGTERM, SIGKILL after 10s) and waits for it.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Lines returns the output lines so far.
func (p *Process) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// WaitLine waits until an output line at index >= from satisfies match and returns its index,
// or fails when ctx ends or the process exits first.
func (p *Process) WaitLine(ctx context.Context, from int, what string, match func(string) bool) (int, error) {
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				p.mu.Unlock()
				return i, nil
			}
		}
		from = max(from, len(p.lines))
		notify := p.notify
		p.mu.Unlock()
		select {
		case <-notify:
		case <-p.done:
			// Drain lines written just before exit.
			time.Sleep(50 * time.Millisecond)
			p.mu.Lock()
			for i := from; i < len(p.lines); i++ {
				if match(p.lines[i]) {
					p.mu.Unlock()
					return i, nil
				}
			}
			p.mu.Unlock()
			return -1, fmt.Errorf("%s exited (%v) before %s; last output:\n%s", p.Name, p.err, what, p.tail(20)) //nolint:errorlint // p.err is nil after a clean exit: %w would print %!w(<nil>)
		case <-ctx.Done():
			return -1, fmt.Errorf("%s: timed out waiting for %s; last output:\n%s", p.Name, what, p.tail(20))
		}
	}
}

func (p *Process) tail(n int) string {
	l := p.Lines()
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
