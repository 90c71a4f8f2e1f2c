package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// makeRun is one `make run` (scripts/run-local.sh) on chosen ports, with the binaries of this
// test run (BIN) and its state in a temporary folder. It runs in a process group of its own, so
// that stop reaches every process as Ctrl-C in a terminal does.
type makeRun struct {
	t     *testing.T
	cmd   *exec.Cmd
	ports map[string]int // variable → port
	data  string

	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr together
	banner chan struct{}
	exited chan struct{}
	err    error
}

// startMakeRun runs `make run` (the script itself where make is missing) with env added.
func startMakeRun(t *testing.T, ports map[string]int, env ...string) *makeRun {
	t.Helper()
	m := &makeRun{t: t, ports: ports, data: t.TempDir(), banner: make(chan struct{}), exited: make(chan struct{})}
	if _, err := exec.LookPath("make"); err == nil {
		m.cmd = exec.Command("make", "-s", "run")
	} else {
		m.cmd = exec.Command("./scripts/run-local.sh")
	}
	m.cmd.Dir = ".."
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	for _, kv := range os.Environ() {
		// Not this shell's settings, nor an outer make's (make test): the run is only what is set here.
		if !strings.HasPrefix(kv, "KNETRECON_") && !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MFLAGS=") &&
			!strings.HasPrefix(kv, "MAKELEVEL=") && !strings.HasPrefix(kv, "SEED=") && !strings.HasPrefix(kv, "BIN=") {
			m.cmd.Env = append(m.cmd.Env, kv)
		}
	}
	m.cmd.Env = append(m.cmd.Env, "BIN="+bin, "DEMO=4", "KNETRECON_DATA_DIR="+m.data)
	for v, p := range ports {
		m.cmd.Env = append(m.cmd.Env, fmt.Sprintf("%s=127.0.0.1:%d", v, p))
	}
	m.cmd.Env = append(m.cmd.Env, env...)
	r, w := io.Pipe()
	m.cmd.Stdout, m.cmd.Stderr = w, w
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		once := sync.Once{}
		for sc.Scan() {
			m.mu.Lock()
			m.out.WriteString(sc.Text() + "\n")
			m.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "Ctrl-C stops everything") {
				once.Do(func() { close(m.banner) })
			}
		}
	}()
	go func() { m.err = m.cmd.Wait(); w.Close(); close(m.exited) }()
	t.Cleanup(func() {
		m.stop(syscall.SIGKILL)
		if t.Failed() {
			t.Logf("make run printed:\n%s", m.output())
			for _, n := range []string{"receiver", "reconciler", "ckosim"} {
				t.Logf("last lines of %s.log:\n%s", n, tail(filepath.Join(m.data, "logs", n+".log"), 15))
			}
		}
	})
	return m
}

func (m *makeRun) output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

// stop signals the whole group and waits for make to end; it reports how long that took.
func (m *makeRun) stop(sig syscall.Signal) time.Duration {
	start := time.Now()
	_ = syscall.Kill(-m.cmd.Process.Pid, sig)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
		<-m.exited
	}
	return time.Since(start)
}

// anyListening returns the variables whose ports something still listens on.
func anyListening(ports map[string]int) []string {
	var open []string
	for v, p := range ports {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 200*time.Millisecond); err == nil {
			c.Close()
			open = append(open, v)
		}
	}
	return open
}

// fourPorts chooses free ports for the four variables make run honours.
func fourPorts(t *testing.T) map[string]int {
	ports := map[string]int{}
	for _, v := range []string{"KNETRECON_RECEIVER_ADDR", "KNETRECON_ADMIN_ADDR", "KNETRECON_NATS_LISTEN", "KNETRECON_CKOSIM_ADDR"} {
		for {
			p := freePort(t)
			dup := false
			for _, q := range ports {
				dup = dup || q == p
			}
			if !dup {
				ports[v] = p
				break
			}
		}
	}
	return ports
}

// TestMakeRun: on chosen ports, the banner comes once everything answers, names the desk first
// with this run's demo reference, and Ctrl-C stops every process.
func TestMakeRun(t *testing.T) {
	ports := fourPorts(t)
	m := startMakeRun(t, ports)
	select {
	case <-m.banner:
	case <-m.exited:
		t.Fatalf("make run ended before its banner: %v", m.err)
	case <-time.After(90 * time.Second):
		t.Fatal("no banner within 90 s")
	}
	out := m.output()
	desk := fmt.Sprintf("http://127.0.0.1:%d/", ports["KNETRECON_ADMIN_ADDR"])
	running := out[strings.Index(out, "knetrecon is running"):]
	if first := strings.SplitN(running, "\n", 2)[0]; !strings.Contains(first, "desk: "+desk) {
		t.Errorf("the banner's first line does not name the desk %s: %q", desk, first)
	}
	if !strings.Contains(running, "Type DEMO1-0004") {
		t.Errorf("the banner does not say which reference to type (DEMO1-0004 for a first run):\n%s", running)
	}
	if nats := fmt.Sprintf("export KNETRECON_DATA_DIR=%s KNETRECON_LEDGER=%s KNETRECON_NATS_URL=nats://127.0.0.1:%d",
		m.data, filepath.Join(m.data, "ledger.db"), ports["KNETRECON_NATS_LISTEN"]); !strings.Contains(running, nats) {
		t.Errorf("the banner does not say what another terminal needs (%s)", nats)
	}
	if !strings.Contains(running, filepath.Join(m.data, "logs")) {
		t.Errorf("the banner does not say where the logs are")
	}
	if n := strings.Count(out, "\n"); n > 30 {
		t.Errorf("make run printed %d lines up to its banner; the logs belong in data/logs", n)
	}
	for what, url := range map[string]string{
		"the desk":       desk,
		"the receiver":   fmt.Sprintf("http://127.0.0.1:%d/readyz", ports["KNETRECON_RECEIVER_ADDR"]),
		"the reconciler": fmt.Sprintf("http://127.0.0.1:%d/readyz", ports["KNETRECON_ADMIN_ADDR"]),
		"the simulator":  fmt.Sprintf("http://127.0.0.1:%d/_sim/payments", ports["KNETRECON_CKOSIM_ADDR"]),
	} {
		if code := status(url); code != 200 {
			t.Errorf("%s at %s answers %d after the banner", what, url, code)
		}
	}
	if len(anyListening(map[string]int{"KNETRECON_NATS_LISTEN": ports["KNETRECON_NATS_LISTEN"]})) == 0 {
		t.Error("the receiver's NATS does not listen on KNETRECON_NATS_LISTEN")
	}
	for _, n := range []string{"receiver", "reconciler", "ckosim"} {
		if _, err := os.Stat(filepath.Join(m.data, "logs", n+".log")); err != nil {
			t.Errorf("no log of the %s: %v", n, err)
		}
	}
	took := m.stop(syscall.SIGINT)
	if open := anyListening(ports); len(open) > 0 {
		t.Errorf("after Ctrl-C something still listens on %v", open)
	}
	t.Logf("FIGURE make run: banner then Ctrl-C; everything stopped in %s", took.Round(time.Millisecond))
}

// TestMakeRunRefuses: a port in use, or a process that stops while starting, ends make run within
// seconds, non-zero, with one line naming the port (or the process) and the variable, and leaves
// nothing running.
func TestMakeRunRefuses(t *testing.T) {
	tests := []struct {
		name string
		take string   // the variable whose port another program holds
		env  []string // more settings
		want []string // in the one line
	}{
		{name: "receiver's port taken", take: "KNETRECON_RECEIVER_ADDR", want: []string{"port %d is in use", "KNETRECON_RECEIVER_ADDR"}},
		{name: "desk's port taken", take: "KNETRECON_ADMIN_ADDR", want: []string{"port %d is in use", "KNETRECON_ADMIN_ADDR"}},
		{name: "reconciler dies starting", env: []string{"KNETRECON_BATCH_SIZE=0"}, want: []string{"the reconciler stopped (exit 2)", "KNETRECON_BATCH_SIZE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ports := fourPorts(t)
			if tt.take != "" {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[tt.take]))
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
			}
			start := time.Now()
			m := startMakeRun(t, ports, tt.env...)
			select {
			case <-m.exited:
			case <-time.After(20 * time.Second):
				t.Fatal("make run still running 20 s later")
			}
			took := time.Since(start)
			if m.err == nil {
				t.Fatal("make run exited 0")
			}
			want := tt.want[0]
			if tt.take != "" {
				want = fmt.Sprintf(want, ports[tt.take])
			}
			var line string
			for _, l := range strings.Split(m.output(), "\n") {
				if strings.Contains(l, want) {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, tt.want[1]) {
				t.Fatalf("no line with %q and %s", want, tt.want[1])
			}
			if strings.Contains(m.output(), "knetrecon is running") {
				t.Error("the banner was printed")
			}
			delete(ports, tt.take)
			if open := anyListening(ports); len(open) > 0 {
				t.Errorf("after the failure something still listens on %v", open)
			}
			t.Logf("FIGURE make run, %s: exit %v in %s: %s", tt.name, m.err, took.Round(time.Millisecond), line)
		})
	}
}

// descendant finds a process below pid whose command name is name (Linux /proc).
func descendant(pid int, name string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		var child int
		if _, err := fmt.Sscan(f, &child); err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(comm)) == name {
			return child
		}
		if d := descendant(child, name); d != 0 {
			return d
		}
	}
	return 0
}

// TestMakeRunStopsWhenOneStops: a process that dies after the banner stops everything, with one
// line naming it and a non-zero exit (the demo never goes on half-alive).
func TestMakeRunStopsWhenOneStops(t *testing.T) {
	ports := fourPorts(t)
	m := startMakeRun(t, ports)
	select {
	case <-m.banner:
	case <-m.exited:
		t.Fatalf("make run ended before its banner: %v", m.err)
	case <-time.After(90 * time.Second):
		t.Fatal("no banner within 90 s")
	}
	sim := descendant(m.cmd.Process.Pid, "ckosim")
	if sim == 0 {
		t.Fatal("no ckosim process below make run")
	}
	if err := syscall.Kill(sim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-m.exited:
	case <-time.After(25 * time.Second):
		t.Fatal("make run still running 25 s after the simulator died")
	}
	if m.err == nil || !strings.Contains(m.output(), "the simulator stopped (exit 137); everything is stopped") {
		t.Fatalf("exit %v, no line naming the simulator", m.err)
	}
	if open := anyListening(ports); len(open) > 0 {
		t.Errorf("something still listens on %v", open)
	}
	t.Logf("FIGURE make run, the simulator killed after the banner: everything stopped in %s", time.Since(start).Round(time.Millisecond))
}
