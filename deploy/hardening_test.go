package deploy

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
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

// manifestFiles are the Kubernetes files the project ships.
var manifestFiles = []string{"kubernetes/knetrecon.yaml", "kubernetes/knetrecon-cluster.yaml"}

// readRaw parses every document of a manifest as plain maps (for checks of any field).
func readRaw(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// dig walks nested maps by keys; nil when a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// list returns v as a list of maps.
func list(v any) []map[string]any {
	var out []map[string]any
	items, _ := v.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestPodsMeetRestricted checks every container (and init container) of every workload of every
// manifest against the Pod Security "restricted" profile, and what the issue adds to it: runs as
// non-root, no privilege escalation, every capability dropped (none added but NET_BIND_SERVICE),
// seccomp RuntimeDefault, no host namespaces or host paths; a read-only root filesystem whose
// writable places are named volumes; CPU and memory requested and memory limited.
func TestPodsMeetRestricted(t *testing.T) {
	for _, file := range manifestFiles {
		containers := 0
		for _, d := range readRaw(t, file) {
			pod := dig(d, "spec", "template", "spec")
			if pod == nil {
				continue
			}
			name := fmt.Sprintf("%s %s/%v", filepath.Base(file), d["kind"], dig(d, "metadata", "name"))
			for _, host := range []string{"hostNetwork", "hostPID", "hostIPC"} {
				if dig(pod, host) == true {
					t.Errorf("%s: %s", name, host)
				}
			}
			volumes := map[string]map[string]any{}
			for _, v := range list(dig(pod, "volumes")) {
				volumes[fmt.Sprint(v["name"])] = v
				if v["hostPath"] != nil {
					t.Errorf("%s: volume %v is a hostPath", name, v["name"])
				}
			}
			claims := map[string]bool{}
			for _, c := range list(dig(d, "spec", "volumeClaimTemplates")) {
				claims[fmt.Sprint(dig(c, "metadata", "name"))] = true
			}
			podSC := dig(pod, "securityContext")
			if dig(podSC, "runAsUser") == 0 || dig(podSC, "runAsGroup") == 0 {
				t.Errorf("%s: the pod runs as user or group 0", name)
			}
			all := append(list(dig(pod, "initContainers")), list(dig(pod, "containers"))...)
			for _, c := range all {
				containers++
				cname := name + " container " + fmt.Sprint(c["name"])
				sc := dig(c, "securityContext")
				either := func(key ...string) any {
					if v := dig(sc, key...); v != nil {
						return v
					}
					return dig(podSC, key...)
				}
				if either("runAsNonRoot") != true {
					t.Errorf("%s: runAsNonRoot is not true", cname)
				}
				if u := either("runAsUser"); u == 0 {
					t.Errorf("%s: runAsUser 0", cname)
				}
				if dig(sc, "allowPrivilegeEscalation") != false {
					t.Errorf("%s: allowPrivilegeEscalation is not false", cname)
				}
				if dig(sc, "privileged") == true {
					t.Errorf("%s: privileged", cname)
				}
				drop, _ := dig(sc, "capabilities", "drop").([]any)
				if !slices.Contains(drop, any("ALL")) {
					t.Errorf("%s: capabilities drop %v, want ALL", cname, drop)
				}
				for _, a := range asList(dig(sc, "capabilities", "add")) {
					if a != "NET_BIND_SERVICE" {
						t.Errorf("%s: adds capability %v", cname, a)
					}
				}
				if tp := either("seccompProfile", "type"); tp != "RuntimeDefault" && tp != "Localhost" {
					t.Errorf("%s: seccompProfile %v, want RuntimeDefault", cname, tp)
				}
				if dig(sc, "readOnlyRootFilesystem") != true {
					t.Errorf("%s: the root filesystem is writable", cname)
				}
				for _, m := range list(c["volumeMounts"]) {
					if m["readOnly"] == true {
						continue
					}
					v := volumes[fmt.Sprint(m["name"])]
					if v["emptyDir"] == nil && v["persistentVolumeClaim"] == nil && !claims[fmt.Sprint(m["name"])] {
						t.Errorf("%s: writable mount %v at %v is not a named emptyDir or claim", cname, m["name"], m["mountPath"])
					}
				}
				for _, r := range [][]string{{"requests", "cpu"}, {"requests", "memory"}, {"limits", "memory"}} {
					if dig(c, append([]string{"resources"}, r...)...) == nil {
						t.Errorf("%s: no resources.%s", cname, strings.Join(r, "."))
					}
				}
			}
		}
		if containers < 3 {
			t.Errorf("%s: %d containers checked", file, containers)
		}
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

// policyFrom is one ingress rule of a NetworkPolicy: its ports and its sources.
type policyFrom struct {
	ports   []string
	sources []map[string]any
}

// TestNetworkPolicies: in every manifest each workload's pods are selected by a NetworkPolicy
// that limits their ingress: the receivers' webhook port only from the ingress controller's
// namespace, NATS's client port only from knetrecon's own pods, the desk (the reconcilers'
// admin port) from the operators' network (an ipBlock) and Prometheus.
func TestNetworkPolicies(t *testing.T) {
	for _, file := range manifestFiles {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw := readRaw(t, file)
			rules := map[string][]policyFrom{} // app label → rules of the policies selecting it
			selected := map[string]bool{}
			for _, d := range raw {
				if d["kind"] != "NetworkPolicy" {
					continue
				}
				app := fmt.Sprint(dig(d, "spec", "podSelector", "matchLabels", "app"))
				types := asList(dig(d, "spec", "policyTypes"))
				if !slices.Contains(types, any("Ingress")) {
					continue
				}
				selected[app] = true
				for _, r := range list(dig(d, "spec", "ingress")) {
					var f policyFrom
					for _, p := range list(r["ports"]) {
						f.ports = append(f.ports, fmt.Sprint(p["port"]))
					}
					f.sources = list(r["from"])
					if len(f.sources) == 0 {
						t.Errorf("policy %v: a rule open to every source", dig(d, "metadata", "name"))
					}
					rules[app] = append(rules[app], f)
				}
			}
			for _, d := range raw {
				if d["kind"] != "Deployment" && d["kind"] != "StatefulSet" {
					continue
				}
				if app := fmt.Sprint(dig(d, "spec", "template", "metadata", "labels", "app")); !selected[app] {
					t.Errorf("%s: no NetworkPolicy limits the ingress of %s", file, app)
				}
			}
			// sourcesOf returns the sources that may reach port of app.
			sourcesOf := func(app, port string) []map[string]any {
				var out []map[string]any
				for _, r := range rules[app] {
					if len(r.ports) == 0 || slices.Contains(r.ports, port) {
						out = append(out, r.sources...)
					}
				}
				return out
			}
			recv := sourcesOf("knetrecon-receiver", "http")
			if len(recv) == 0 {
				t.Errorf("no one may send webhooks to the receivers")
			}
			for _, s := range recv {
				if s["namespaceSelector"] == nil || s["podSelector"] != nil || s["ipBlock"] != nil {
					t.Errorf("the receivers' webhook port is open to %v: want the ingress controller's namespace only", s)
				}
			}
			nats := sourcesOf("knetrecon-nats", "client")
			if len(nats) == 0 {
				t.Errorf("no one may reach NATS")
			}
			for _, s := range nats {
				app := fmt.Sprint(dig(s, "podSelector", "matchLabels", "app"))
				if s["namespaceSelector"] != nil || s["ipBlock"] != nil || !strings.HasPrefix(app, "knetrecon-") {
					t.Errorf("NATS's client port is open to %v: want knetrecon's pods only", s)
				}
			}
			desk := sourcesOf("knetrecon-reconciler", "admin")
			if !slices.ContainsFunc(desk, func(s map[string]any) bool { return s["ipBlock"] != nil }) {
				t.Errorf("the desk is not open to an operators' network (an ipBlock): %v", desk)
			}
			for _, s := range desk {
				if s["ipBlock"] == nil && s["namespaceSelector"] == nil {
					t.Errorf("the desk is open to %v", s)
				}
				if c := fmt.Sprint(dig(s, "ipBlock", "cidr")); c == "0.0.0.0/0" || c == "::/0" {
					t.Errorf("the desk is open to every address")
				}
			}
		})
	}
}

// natsServerVersion is the nats-server version go.mod holds: the one the tests run.
func natsServerVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/nats-io/nats-server/v2 v(\d+\.\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod holds no nats-server")
	}
	return string(m[1])
}

// checkNATSImage: the image is the nats-server version the project is tested with.
func checkNATSImage(t *testing.T, where, image, version string) {
	t.Helper()
	tag, _ := strings.CutPrefix(image, "nats:")
	if tag != version && !strings.HasPrefix(tag, version+"-") {
		t.Errorf("%s: image %s, want nats:%s (go.mod's nats-server, which the tests run)", where, image, version)
	}
}

// secretFor is the secret file that holds a NATS user's password in the shipped stacks.
func secretFor(user string) string {
	return "nats_" + strings.ReplaceAll(user, "-", "_") + "_password"
}

// checkMonitor: a receiver reads /varz from every NATS server of its stack.
func checkMonitor(t *testing.T, where, urls string, hosts []string) {
	t.Helper()
	var got, want []string
	for _, u := range strings.Split(urls, ",") {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.Port() == "8222" {
			got = append(got, p.Hostname())
		}
	}
	want = slices.Clone(hosts)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: KNETRECON_NATS_MONITOR_URL %q, want every server's monitor %v:8222 (the receiver checks each fsyncs before acknowledging)", where, urls, want)
	}
}

// TestNATSInEveryStack: every shipped stack runs the nats-server version go.mod holds, with a
// configuration from deploy/nats that fsyncs before acknowledging (sync_interval: always) and
// admits only its users; each receiver and reconciler connects as its own user with its own
// password from a secret file (a reconciler's user is its consumer's name; the receivers also
// hold the keeper's), the receivers read every server's /varz, and none says KNETRECON_DURABLE=false.
func TestNATSInEveryStack(t *testing.T) {
	version := natsServerVersion(t)
	t.Run("compose", func(t *testing.T) {
		for _, file := range []string{"compose.yaml", "compose.cluster.yaml"} {
			c := readCompose(t, file)
			var servers []string
			var conf natsConf
			for _, name := range slices.Sorted(maps.Keys(c.Services)) {
				if s := c.Services[name]; s.role() == "nats" {
					checkNATSImage(t, file+" "+name, s.Image, version)
					conf = composeNATSConf(t, c, name)
					if sd := conf.checkDurable(t, file+" "+name); c.Volumes[s.volumeAt(sd)] == nil {
						t.Errorf("%s %s: the store %q is not on a named volume", file, name, sd)
					}
					servers = append(servers, name)
				}
			}
			if len(servers) == 0 {
				t.Fatalf("%s: no NATS service", file)
			}
			users := conf.users()
			for _, name := range slices.Sorted(maps.Keys(c.Services)) {
				s := c.Services[name]
				role := s.role()
				if role != "receiver" && role != "reconciler" {
					continue
				}
				where, env := file+" "+name, s.Environment
				secretOf := func(v string) string {
					x, ok := strings.CutPrefix(env[v], "/run/secrets/")
					if !ok || !slices.Contains(s.Secrets, x) || c.Secrets[x].File == "" {
						t.Errorf("%s: %s %q is not a secret file the service mounts", where, v, env[v])
					}
					return x
				}
				user := env["KNETRECON_NATS_USER"]
				if !slices.Contains(users, user) {
					t.Errorf("%s: KNETRECON_NATS_USER %q is not a user of %s %v", where, user, conf.name, users)
				}
				if got := secretOf("KNETRECON_NATS_PASSWORD_FILE"); got != secretFor(user) {
					t.Errorf("%s: its password is the secret %s, want %s (the one NATS reads for %s)", where, got, secretFor(user), user)
				}
				if strings.EqualFold(env["KNETRECON_DURABLE"], "false") {
					t.Errorf("%s: KNETRECON_DURABLE=false", where)
				}
				switch role {
				case "receiver":
					if user != "receiver" {
						t.Errorf("%s: connects as %q, want receiver", where, user)
					}
					if got := secretOf("KNETRECON_NATS_KEEPER_PASSWORD_FILE"); got != secretFor("keeper") {
						t.Errorf("%s: the keeper's password is the secret %s, want %s", where, got, secretFor("keeper"))
					}
					checkMonitor(t, where, env["KNETRECON_NATS_MONITOR_URL"], servers)
				case "reconciler":
					if user != cmp.Or(env["KNETRECON_CONSUMER"], "reconciler") {
						t.Errorf("%s: user %q, consumer %q: a reconciler's user is its consumer's name", where, user, env["KNETRECON_CONSUMER"])
					}
				}
			}
		}
	})
	t.Run("kubernetes", func(t *testing.T) {
		// The cluster manifest names the reconcilers' users after their pods.
		renames := strings.NewReplacer("reconciler-a", "knetrecon-reconciler-0", "reconciler-b", "knetrecon-reconciler-1",
			"RECONCILER_A", "RECONCILER_0", "RECONCILER_B", "RECONCILER_1")
		for _, file := range manifestFiles {
			docs := readManifests(t, file)
			for _, d := range docs {
				if d.Kind != "ConfigMap" {
					continue
				}
				for key, text := range d.Data {
					shipped, err := os.ReadFile(filepath.Join("nats", key))
					if err != nil {
						t.Errorf("%s: ConfigMap %s holds %s, which deploy/nats does not ship", file, d.Metadata.Name, key)
					} else if text != string(shipped) && text != renames.Replace(string(shipped)) {
						t.Errorf("%s: ConfigMap %s's %s differs from deploy/nats/%s", file, d.Metadata.Name, key, key)
					}
				}
			}
			nats := workloads(docs, "nats")
			if len(nats) != 1 {
				t.Fatalf("%s: %d NATS workloads", file, len(nats))
			}
			nc := nats[0].Spec.Template.Spec.Containers[0]
			checkNATSImage(t, file, nc.Image, version)
			conf := k8sNATSConf(t, docs, nats[0], nc)
			conf.checkDurable(t, file)
			users := conf.users()
			replicas := 1
			if r := nats[0].Spec.Replicas; r != nil {
				replicas = *r
			}
			var servers []string
			for i := range replicas {
				if replicas == 1 {
					servers = append(servers, nats[0].Spec.ServiceName)
				} else {
					servers = append(servers, fmt.Sprintf("%s-%d.%s", nats[0].Metadata.Name, i, nats[0].Spec.ServiceName))
				}
			}
			for _, role := range []string{"receiver", "reconciler"} {
				for _, w := range workloads(docs, role) {
					c := w.Spec.Template.Spec.Containers[0]
					n := 1
					if w.Spec.Replicas != nil && role == "reconciler" {
						n = *w.Spec.Replicas
					}
					value := func(name string) string { e, _ := c.env(name); return e.Value }
					if strings.EqualFold(value("KNETRECON_DURABLE"), "false") {
						t.Errorf("%s %s: KNETRECON_DURABLE=false", file, role)
					}
					if role == "receiver" {
						checkMonitor(t, file+" receiver", value("KNETRECON_NATS_MONITOR_URL"), servers)
					}
					// Each pod of the workload: $(VAR) as Kubernetes expands it, the pod's name.
					for i := range n {
						pod := fmt.Sprintf("%s-%d", w.Metadata.Name, i)
						expand := func(s string) string {
							if e, ok := c.env("KNETRECON_CONSUMER"); ok && e.ValueFrom != nil {
								s = strings.ReplaceAll(s, "$(KNETRECON_CONSUMER)", pod)
							}
							return s
						}
						where := fmt.Sprintf("%s %s", file, pod)
						user := expand(value("KNETRECON_NATS_USER"))
						if !slices.Contains(users, user) {
							t.Errorf("%s: KNETRECON_NATS_USER %q is not a user of %s %v", where, user, conf.name, users)
						}
						consumer := value("KNETRECON_CONSUMER")
						if e, _ := c.env("KNETRECON_CONSUMER"); e.ValueFrom != nil {
							consumer = pod
						}
						if role == "reconciler" && user != cmp.Or(consumer, "reconciler") {
							t.Errorf("%s: user %q, consumer %q: a reconciler's user is its consumer's name", where, user, consumer)
						}
						files := map[string]string{"KNETRECON_NATS_PASSWORD_FILE": secretFor(strings.TrimPrefix(user, "knetrecon-"))}
						if role == "receiver" {
							files["KNETRECON_NATS_KEEPER_PASSWORD_FILE"] = secretFor("keeper")
						}
						for v, wantKey := range files {
							if got := secretKeyAt(w, c, expand(value(v))); got != wantKey {
								t.Errorf("%s: %s %q is the Secret's %q, want %q", where, v, value(v), got, wantKey)
							}
						}
					}
				}
			}
		}
	})
	t.Run("systemd", func(t *testing.T) {
		d := unitDirectives(t, "systemd/knetrecon-nats.service")
		exec := strings.Fields(d["ExecStart"][0])
		if unit, _ := os.ReadFile("systemd/knetrecon-nats.service"); !strings.Contains(string(unit), "nats-server v"+version) &&
			!strings.Contains(string(unit), "(v"+version) {
			t.Errorf("knetrecon-nats.service does not name nats-server v%s, the version the project is tested with", version)
		}
		conf := loadNATSConf(t, filepath.Base(natsConfigFlag(exec)), readDir("nats"))
		conf.checkDurable(t, "knetrecon-nats.service")
		set := strings.Join(d["Environment"], " ")
		for _, v := range conf.vars() {
			if !strings.HasSuffix(v, "_PASSWORD") && !strings.Contains(set, v+"=") {
				t.Errorf("knetrecon-nats.service: the configuration reads $%s, which the unit does not set", v)
			}
		}
		if len(d["EnvironmentFile"]) == 0 {
			t.Errorf("knetrecon-nats.service: no EnvironmentFile for the users' passwords")
		}
	})
}

// secretKeyAt returns the key of the Secret item mounted at path in container c of workload w,
// or "" when path is not a file of a Secret volume.
func secretKeyAt(w k8sDoc, c k8sContainer, path string) string {
	vol := c.mountOf(path)
	for _, m := range c.VolumeMounts {
		if m.Name != vol {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(path, m.MountPath), "/")
		for _, v := range w.Spec.Template.Spec.Volumes {
			if v.Name != vol || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return rel
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return it.Key
				}
			}
		}
	}
	return ""
}

// loopbackAddr reports whether a listen address is on a loopback host.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (host == "localhost" || (ip != nil && ip.IsLoopback()))
}

// TestDeskTokenWired: wherever a reconciler's desk listens beyond loopback (KNETRECON_ADMIN_ADDR),
// its token is a file of a secret the reconciler mounts (without one the desk is off there).
func TestDeskTokenWired(t *testing.T) {
	tokenVars := []string{"KNETRECON_DESK_TOKEN_FILE", "KNETRECON_DESK_TOKENS_FILE"}
	for _, file := range []string{"compose.yaml", "compose.cluster.yaml"} {
		c := readCompose(t, file)
		for _, name := range slices.Sorted(maps.Keys(c.Services)) {
			s := c.Services[name]
			if s.role() != "reconciler" || loopbackAddr(cmp.Or(s.Environment["KNETRECON_ADMIN_ADDR"], "127.0.0.1:9090")) {
				continue
			}
			ok := slices.ContainsFunc(tokenVars, func(v string) bool {
				x, isSecret := strings.CutPrefix(s.Environment[v], "/run/secrets/")
				return isSecret && slices.Contains(s.Secrets, x) && c.Secrets[x].File != ""
			})
			if !ok {
				t.Errorf("%s %s: the desk listens on %s without a token from a secret file", file, name, s.Environment["KNETRECON_ADMIN_ADDR"])
			}
		}
	}
	for _, file := range manifestFiles {
		docs := readManifests(t, file)
		for _, w := range workloads(docs, "reconciler") {
			c := w.Spec.Template.Spec.Containers[0]
			addr, _ := c.env("KNETRECON_ADMIN_ADDR")
			if loopbackAddr(cmp.Or(addr.Value, "127.0.0.1:9090")) {
				continue
			}
			ok := slices.ContainsFunc(tokenVars, func(v string) bool {
				e, set := c.env(v)
				return set && secretKeyAt(w, c, e.Value) != ""
			})
			if !ok {
				t.Errorf("%s %s: the desk listens on %s without a token from a Secret", file, w.Metadata.Name, addr.Value)
			}
		}
	}
	for _, unit := range []string{"systemd/knetrecon-reconciler.service"} {
		for _, env := range unitDirectives(t, unit)["Environment"] {
			if v, ok := strings.CutPrefix(env, "KNETRECON_ADMIN_ADDR="); ok && !loopbackAddr(v) {
				t.Errorf("%s: the desk listens on %s: set the token in the unit's environment file and say so", unit, v)
			}
		}
	}
}

// checkNATSLoads runs nats-server's own parser over a configuration as a stack ships it (files
// by name, every $VARIABLE set): it must load, fsync always, and admit only its users.
func checkNATSLoads(t *testing.T, where, name string, files map[string]string, conf natsConf) {
	t.Helper()
	dir := t.TempDir()
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range conf.vars() {
		t.Setenv(v, "x-"+strings.ToLower(v))
	}
	opts, err := server.ProcessConfigFile(filepath.Join(dir, name))
	if err != nil {
		t.Errorf("%s: nats-server does not load %s: %v", where, name, err)
		return
	}
	if !opts.JetStream || !opts.SyncAlways {
		t.Errorf("%s: %s loads with JetStream %v, sync always %v", where, name, opts.JetStream, opts.SyncAlways)
	}
	var users []string
	for _, u := range opts.Users {
		users = append(users, u.Username)
	}
	if want := conf.users(); !slices.Equal(users, want) || opts.NoAuthUser != "" {
		t.Errorf("%s: %s loads users %v (no-auth user %q), want %v", where, name, users, opts.NoAuthUser, want)
	}
}

// TestNATSConfigurationsLoad: what every stack mounts, as nats-server itself reads it.
func TestNATSConfigurationsLoad(t *testing.T) {
	shipped := map[string]string{}
	entries, err := os.ReadDir("nats")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("nats", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		shipped[e.Name()] = string(b)
	}
	for _, name := range []string{"nats.conf", "cluster.conf"} {
		checkNATSLoads(t, "deploy/nats", name, shipped, loadNATSConf(t, name, readDir("nats")))
	}
	for _, file := range manifestFiles {
		docs := readManifests(t, file)
		w := workloads(docs, "nats")[0]
		c := w.Spec.Template.Spec.Containers[0]
		conf := k8sNATSConf(t, docs, w, c)
		for _, d := range docs {
			if d.Kind == "ConfigMap" && d.Data[conf.name] != "" {
				checkNATSLoads(t, file, conf.name, d.Data, conf)
			}
		}
	}
}
