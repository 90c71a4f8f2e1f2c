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
