package deploy

import (
	"bufio"
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unitDirectives reads a systemd unit's directives (name → every value, in order).
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not a directive", path, line)
		}
		out[k] = append(out[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSystemdUnitsHardened: every unit creates files its user's alone (UMask=0077), owns a state
// directory of mode 0700, runs as an unprivileged user, and is rated 2.0 or below by
// `systemd-analyze security --offline=true` where systemd-analyze is installed.
func TestSystemdUnitsHardened(t *testing.T) {
	units, err := filepath.Glob("systemd/*.service")
	if err != nil || len(units) < 2 {
		t.Fatalf("units %v, %v", units, err)
	}
	analyze, lookErr := exec.LookPath("systemd-analyze")
	overall := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`)
	for _, unit := range units {
		t.Run(filepath.Base(unit), func(t *testing.T) {
			d := unitDirectives(t, unit)
			one := func(name string) string {
				if v := d[name]; len(v) > 0 {
					return v[len(v)-1]
				}
				return ""
			}
			if one("UMask") != "0077" {
				t.Errorf("UMask=%q, want 0077", one("UMask"))
			}
			if one("StateDirectory") == "" || one("StateDirectoryMode") != "0700" {
				t.Errorf("StateDirectory=%q StateDirectoryMode=%q: want a state directory of mode 0700", one("StateDirectory"), one("StateDirectoryMode"))
			}
			if u := one("User"); (u == "" || u == "root") && one("DynamicUser") != "true" {
				t.Errorf("runs as %q", cmp.Or(u, "root"))
			}
			if one("CapabilityBoundingSet") != "" || !slices.Contains(d["CapabilityBoundingSet"], "") {
				t.Errorf("CapabilityBoundingSet=%q, want empty (no capability)", d["CapabilityBoundingSet"])
			}
			if lookErr != nil {
				t.Skipf("no systemd-analyze (%v): the exposure is not measured here", lookErr)
			}
			abs, err := filepath.Abs(unit)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", abs).CombinedOutput()
			m := overall.FindSubmatch(out)
			if m == nil {
				t.Fatalf("systemd-analyze security: %v\n%s", err, out)
			}
			score, _ := strconv.ParseFloat(string(m[1]), 64)
			t.Logf("exposure %.1f", score)
			if score > 2.0 {
				t.Errorf("exposure %.1f, want 2.0 or below:\n%s", score, out)
			}
			if strings.Contains(string(out), "Failed to parse") || strings.Contains(string(out), "Unknown key") {
				t.Errorf("systemd-analyze does not read every directive:\n%s", out)
			}
		})
	}
}

// dockerStage is one stage of the Dockerfile: its base, its name, its instructions.
type dockerStage struct {
	from, name string
	lines      []string // instructions after FROM, continuation lines joined
}

// readDockerfile parses the Dockerfile's stages (enough for the checks here: FROM, RUN, COPY).
func readDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		f := strings.Fields(line)
		if strings.EqualFold(f[0], "FROM") {
			s := dockerStage{from: f[1]}
			if len(f) >= 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before any FROM", line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(l, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(l)
		flush()
	}
	flush()
	return stages
}

// TestProductionImage: the Dockerfile's default target (its last stage) installs nothing (no curl,
// no package manager), has no shell in its base, and holds the receiver and the reconciler built
// without the simulator, which has a target of its own.
func TestProductionImage(t *testing.T) {
	stages := readDockerfile(t)
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	prod := stages[len(stages)-1]
	if !strings.Contains(prod.from, "distroless") {
		t.Errorf("the production stage is FROM %s: want a base without a shell (distroless)", prod.from)
	}
	var copied []string // stages the production image copies from, and theirs
	for _, l := range prod.lines {
		lower := strings.ToLower(l)
		if strings.HasPrefix(lower, "run ") {
			t.Errorf("the production stage runs %q: it must install nothing (and has no shell to)", l)
		}
		if strings.Contains(lower, "curl") || strings.Contains(lower, "ckosim") {
			t.Errorf("the production stage mentions curl or the simulator: %q", l)
		}
		if from, ok := flagIn(l, "--from"); ok {
			copied = append(copied, from)
		}
	}
	if len(copied) == 0 {
		t.Fatal("the production stage copies nothing from a build stage")
	}
	// Every stage the production image is made from, through COPY --from and FROM.
	seen := map[string]bool{}
	for len(copied) > 0 {
		name := copied[0]
		copied = copied[1:]
		s, ok := byName[name]
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		copied = append(copied, s.from)
		for _, l := range s.lines {
			lower := strings.ToLower(l)
			if strings.Contains(lower, "curl") || strings.Contains(lower, "ckosim") {
				t.Errorf("stage %s, which the production image is made from, mentions curl or the simulator: %q", name, l)
			}
			if strings.Contains(lower, "go build") && (!strings.Contains(l, "./cmd/receiver") || !strings.Contains(l, "./cmd/reconciler")) {
				t.Errorf("stage %s builds %q: want the receiver and the reconciler", name, l)
			}
		}
	}
	sim, ok := byName["ckosim"]
	if !ok {
		t.Fatal("no ckosim target: the simulator needs an image of its own for demos")
	}
	if !slices.ContainsFunc(sim.lines, func(l string) bool { return strings.Contains(l, "ckosim") && strings.HasPrefix(l, "COPY") }) {
		t.Errorf("the ckosim target does not copy the simulator: %q", sim.lines)
	}
}

// flagIn returns the value of a --name=value option of a Dockerfile instruction.
func flagIn(line, name string) (string, bool) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// natsConf is a nats-server configuration as a stack ships it, its includes inlined.
type natsConf struct {
	name, text string
}

var (
	natsInclude   = regexp.MustCompile(`(?m)^\s*include\s+"?([^"\s]+)"?\s*$`)
	natsVar       = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)
	natsComment   = regexp.MustCompile(`(?m)^\s*#.*$`)
	natsBlockOpen = regexp.MustCompile(`(?m)^\s*([a-z_]+)\s*[:=]?\s*\{`)
)

// loadNATSConf reads the configuration name through read (a folder's files, or a ConfigMap's
// data), comments dropped and includes inlined.
func loadNATSConf(t *testing.T, name string, read func(string) (string, bool)) natsConf {
	t.Helper()
	raw, ok := read(name)
	if !ok {
		t.Fatalf("NATS configuration %s: not shipped", name)
	}
	text := natsComment.ReplaceAllString(raw, "")
	for range 5 {
		text = natsInclude.ReplaceAllStringFunc(text, func(m string) string {
			inc := natsInclude.FindStringSubmatch(m)[1]
			b, ok := read(filepath.Base(inc))
			if !ok {
				t.Errorf("NATS configuration %s includes %s, which is not shipped beside it", name, inc)
			}
			return natsComment.ReplaceAllString(b, "")
		})
	}
	return natsConf{name: name, text: text}
}

// block returns the body of the top-level block name ("jetstream", "cluster"), or "".
func (c natsConf) block(name string) string {
	for _, m := range natsBlockOpen.FindAllStringSubmatchIndex(c.text, -1) {
		if c.text[m[2]:m[3]] != name {
			continue
		}
		depth, start := 1, m[1]
		for i := start; i < len(c.text); i++ {
			switch c.text[i] {
			case '{':
				depth++
			case '}':
				depth--
				if depth == 0 {
					return c.text[start:i]
				}
			}
		}
	}
	return ""
}

// value returns key's value in text (a block's body or the whole file): the first `key: value`.
func natsValue(text, key string) string {
	m := regexp.MustCompile(`(?m)^\s*` + key + `\s*[:=]\s*(.+?)\s*$`).FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return strings.Trim(m[1], `"`)
}

// vars returns every $VARIABLE the configuration reads from nats-server's environment.
func (c natsConf) vars() []string {
	var out []string
	for _, m := range natsVar.FindAllStringSubmatch(c.text, -1) {
		if !slices.Contains(out, m[1]) && !strings.HasPrefix(m[1], "JS") && !strings.HasPrefix(m[1], "KV") {
			out = append(out, m[1])
		}
	}
	return out
}

// users returns the users of the authorization block.
func (c natsConf) users() []string {
	var out []string
	for _, m := range regexp.MustCompile(`\{\s*user:\s*"?([A-Za-z0-9_.-]+)"?`).FindAllStringSubmatch(c.text, -1) {
		out = append(out, m[1])
	}
	return out
}

// checkDurable: JetStream on, every message fsynced before it is acknowledged, users with passwords
// (no anonymous access), the store where the stack keeps a volume.
func (c natsConf) checkDurable(t *testing.T, where string) (storeDir string) {
	t.Helper()
	js := c.block("jetstream")
	if js == "" {
		t.Errorf("%s: %s has no jetstream block", where, c.name)
	}
	if v := natsValue(js, "sync_interval"); v != "always" {
		t.Errorf("%s: %s sets sync_interval %q, want always: JetStream must fsync before it acknowledges", where, c.name, v)
	}
	if len(c.users()) < 3 || c.block("authorization") == "" {
		t.Errorf("%s: %s has no authorization users (%v)", where, c.name, c.users())
	}
	if strings.Contains(c.text, "no_auth_user") {
		t.Errorf("%s: %s lets clients in without a credential (no_auth_user)", where, c.name)
	}
	return natsValue(js, "store_dir")
}

// readDir reads a shipped folder's files by name.
func readDir(dir string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return string(b), err == nil
	}
}

// natsConfigFlag returns the -c file of a nats-server command line (or of a shell line that
// execs nats-server).
func natsConfigFlag(args []string) string {
	m := regexp.MustCompile(`(?:^|\s)(?:-c|--config)[ =](\S+)`).FindStringSubmatch(" " + strings.Join(args, " "))
	if m == nil {
		return ""
	}
	return m[1]
}

// k8sNATSConf returns the configuration a NATS container runs: its -c file, from the ConfigMap
// mounted above it. Every $VARIABLE the configuration reads must be in the container's env.
func k8sNATSConf(t *testing.T, docs []k8sDoc, w k8sDoc, c k8sContainer) natsConf {
	t.Helper()
	path := natsConfigFlag(c.Args)
	vol := c.mountOf(path)
	var data map[string]string
	for _, v := range w.Spec.Template.Spec.Volumes {
		if v.Name != vol || v.ConfigMap == nil {
			continue
		}
		for _, d := range docs {
			if d.Kind == "ConfigMap" && d.Metadata.Name == v.ConfigMap.Name {
				data = d.Data
			}
		}
	}
	if path == "" || data == nil {
		t.Fatalf("%s: NATS's configuration %q is not a file of a ConfigMap the pod mounts", w.Metadata.Name, path)
	}
	conf := loadNATSConf(t, filepath.Base(path), func(name string) (string, bool) { s, ok := data[name]; return s, ok })
	for _, v := range conf.vars() {
		if _, ok := c.env(v); !ok {
			t.Errorf("%s: NATS's configuration reads $%s, which the container's env does not set", w.Metadata.Name, v)
		}
	}
	return conf
}

// composeNATSConf returns the configuration a compose NATS service runs: its -c file, from the
// host folder mounted above it. Every $VARIABLE the configuration reads must be set: a password
// (KNETRECON_NATS_<ROLE>_PASSWORD) from the secret nats_<role>_password the service mounts, read
// by its command line, anything else in its environment.
func composeNATSConf(t *testing.T, c composeFile, name string) natsConf {
	t.Helper()
	s := c.Services[name]
	line := append(slices.Clone(s.Entrypoint), s.Command...)
	path := natsConfigFlag(line)
	dir := ""
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") && strings.HasPrefix(path, strings.TrimSuffix(parts[1], "/")+"/") {
			dir = filepath.Join(parts[0], strings.TrimPrefix(filepath.Dir(path), parts[1]))
		}
	}
	if path == "" || dir == "" {
		t.Fatalf("%s: NATS's configuration %q is not a file of a folder of deploy/ the service mounts", name, path)
	}
	conf := loadNATSConf(t, filepath.Base(path), readDir(dir))
	for _, v := range conf.vars() {
		role, isPassword := strings.CutPrefix(strings.TrimSuffix(v, "_PASSWORD"), "KNETRECON_NATS_")
		secret := "nats_" + strings.ToLower(role) + "_password"
		switch {
		case isPassword && strings.HasSuffix(v, "_PASSWORD"):
			if !slices.Contains(s.Secrets, secret) || c.Secrets[secret].File == "" || !strings.Contains(strings.Join(line, " "), role) {
				t.Errorf("%s: NATS's configuration reads $%s: want the secret %s mounted and read by its command", name, v, secret)
			}
		case s.Environment[v] == "":
			t.Errorf("%s: NATS's configuration reads $%s, which the service's environment does not set", name, v)
		}
	}
	return conf
}
