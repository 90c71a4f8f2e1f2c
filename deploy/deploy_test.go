// Package deploy holds how knetrecon runs in production; its test keeps the alert rules honest.
package deploy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Every metric an alert rule or the runbook names must be one the code registers: a renamed
// series would silently disarm an alert.
func TestAlertRulesNameRealMetrics(t *testing.T) {
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	docs := readDocs(t)
	var code strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`knetrecon_[a-z_]+`)
	seen := map[string]bool{}
	for _, src := range [][]byte{rules, docs} {
		for _, m := range names.FindAllString(string(src), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
			if seen[base] {
				continue
			}
			seen[base] = true
			if !strings.Contains(code.String(), `"`+base+`"`) {
				t.Errorf("%s is named in the alert rules or the docs but no code registers it", base)
			}
		}
	}
	if len(seen) < 8 {
		t.Fatalf("only %d metric names found: %v", len(seen), seen)
	}
}

// readDocs is the README and every page of docs/, concatenated: where the runbook and the
// operator's metrics are named.
func readDocs(t *testing.T) []byte {
	t.Helper()
	pages, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	for _, p := range append([]string{"../README.md"}, pages...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, b...), '\n')
	}
	return all
}

// Every alert's runbook annotation names a page of the repository and one of its headings, as
// GitHub anchors them, so that a page's link lands on the entry.
func TestAlertRunbooksExist(t *testing.T) {
	raw, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	anchors := map[string]map[string]bool{}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			page, anchor, ok := strings.Cut(r.Annotations["runbook"], "#")
			if !ok || page == "" || anchor == "" {
				t.Errorf("%s: runbook %q is not page#anchor", r.Alert, r.Annotations["runbook"])
				continue
			}
			if anchors[page] == nil {
				b, err := os.ReadFile(filepath.Join("..", page))
				if err != nil {
					t.Errorf("%s: runbook page: %v", r.Alert, err)
					continue
				}
				anchors[page] = headingAnchors(string(b))
			}
			if !anchors[page][anchor] {
				t.Errorf("%s: runbook %s#%s: no such heading in %s", r.Alert, page, anchor, page)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d alerts found", n)
	}
}

// Every link of the README and of the pages under docs/ and deploy/ stays in the repository: a
// file that exists and, after a #, one of its headings. Only the local demo's addresses
// (127.0.0.1, localhost) may be URLs.
func TestDocsLinksStayInRepository(t *testing.T) {
	pages := []string{"../README.md"}
	for _, glob := range []string{"../docs/*.md", "*.md"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, m...)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if anchors[path] == nil {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			anchors[path] = headingAnchors(string(b))
		}
		return anchors[path]
	}
	n := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			n++
			target := m[1]
			if u, err := url.Parse(target); err == nil && u.Scheme != "" {
				if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" {
					t.Errorf("%s: %s points outside the repository", page, target)
				}
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.Join(filepath.Dir(page), file)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", page, target, err)
				continue
			}
			if anchor != "" && strings.HasSuffix(path, ".md") && !anchorsOf(path)[anchor] {
				t.Errorf("%s: link %s: no such heading in %s", page, target, path)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d links found in %v", n, pages)
	}
}

// headingAnchors is the set of anchors GitHub gives the Markdown headings of a page: lower case,
// spaces as hyphens, punctuation other than hyphens and underscores dropped.
func headingAnchors(page string) map[string]bool {
	anchors := map[string]bool{}
	fenced := false
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

// goSource is every non-test Go file of the module, concatenated (to check names against).
func goSource(t *testing.T) string {
	t.Helper()
	var code strings.Builder
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return code.String()
}

// knownVariable reports whether the code reads the variable name (a …_FILE holds the secret the
// code reads under the name without the suffix).
func knownVariable(code, name string) bool {
	base := strings.TrimSuffix(name, "_FILE")
	return strings.Contains(code, `"`+base+`"`)
}

// The parts of a Kubernetes document the tests look at.
type (
	k8sProbe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
	}
	k8sEnv struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	}
	k8sMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}
	k8sContainer struct {
		Name    string   `yaml:"name"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Env     []k8sEnv `yaml:"env"`
		Ports   []struct {
			Name string `yaml:"name"`
		} `yaml:"ports"`
		ReadinessProbe *k8sProbe  `yaml:"readinessProbe"`
		LivenessProbe  *k8sProbe  `yaml:"livenessProbe"`
		VolumeMounts   []k8sMount `yaml:"volumeMounts"`
	}
	k8sServicePort struct {
		Port int `yaml:"port"`
	}
	k8sSecretItem struct {
		Key  string `yaml:"key"`
		Path string `yaml:"path"`
	}
	k8sSpread struct {
		PodAffinityTerm struct {
			TopologyKey   string `yaml:"topologyKey"`
			LabelSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"labelSelector"`
		} `yaml:"podAffinityTerm"`
	}
	k8sDoc struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		// Data is a ConfigMap's.
		Data map[string]string `yaml:"data"`
		Spec struct {
			Replicas    *int   `yaml:"replicas"`
			ServiceName string `yaml:"serviceName"`
			ClusterIP   string `yaml:"clusterIP"`
			// Selector is a Service's labels, or a workload's or a budget's {matchLabels: …}.
			Selector     map[string]any   `yaml:"selector"`
			MinAvailable any              `yaml:"minAvailable"`
			Ports        []k8sServicePort `yaml:"ports"`
			Template     struct {
				Metadata struct {
					Labels map[string]string `yaml:"labels"`
				} `yaml:"metadata"`
				Spec struct {
					Affinity struct {
						PodAntiAffinity struct {
							Preferred []k8sSpread `yaml:"preferredDuringSchedulingIgnoredDuringExecution"`
						} `yaml:"podAntiAffinity"`
					} `yaml:"affinity"`
					Containers []k8sContainer `yaml:"containers"`
					Volumes    []struct {
						Name   string `yaml:"name"`
						Secret *struct {
							SecretName string          `yaml:"secretName"`
							Items      []k8sSecretItem `yaml:"items"`
						} `yaml:"secret"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
			VolumeClaimTemplates []struct {
				Metadata struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			} `yaml:"volumeClaimTemplates"`
		} `yaml:"spec"`
	}
)

// readManifests parses every document of a manifest file.
func readManifests(t *testing.T, path string) []k8sDoc {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []k8sDoc
	for {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d.APIVersion == "" || d.Kind == "" || d.Metadata.Name == "" {
			t.Fatalf("%s: a document without apiVersion, kind or name: %+v", path, d)
		}
		docs = append(docs, d)
	}
	return docs
}

// role is what a container runs: receiver, reconciler, nats, or "".
func (c k8sContainer) role() string {
	if strings.HasPrefix(c.Image, "nats:") {
		return "nats"
	}
	if len(c.Command) > 0 {
		return filepath.Base(c.Command[0])
	}
	return ""
}

// env returns the container's variable name, if it sets it.
func (c k8sContainer) env(name string) (k8sEnv, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return k8sEnv{}, false
}

// mountOf returns the volume that holds path in the container: the deepest mount above it.
func (c k8sContainer) mountOf(path string) string {
	best, name := "", ""
	for _, m := range c.VolumeMounts {
		if (path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")) && len(m.MountPath) > len(best) {
			best, name = m.MountPath, m.Name
		}
	}
	return name
}

// selectorLabels returns the labels a Service, workload or budget selects.
func (d k8sDoc) selectorLabels() map[string]string {
	sel := d.Spec.Selector
	if d.Kind != "Service" {
		sel, _ = d.Spec.Selector["matchLabels"].(map[string]any)
	}
	out := map[string]string{}
	for k, v := range sel {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// selects reports whether a non-empty selector matches labels.
func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// workloads returns the Deployments and StatefulSets whose first container has role.
func workloads(docs []k8sDoc, role string) []k8sDoc {
	var out []k8sDoc
	for _, d := range docs {
		if (d.Kind == "Deployment" || d.Kind == "StatefulSet") && len(d.Spec.Template.Spec.Containers) > 0 &&
			d.Spec.Template.Spec.Containers[0].role() == role {
			out = append(out, d)
		}
	}
	return out
}

// TestKubernetesManifests parses every document of both manifests: each StatefulSet names a
// Service that exists, every image is pinned (a tag, never latest), every probe names a port of
// its container, every KNETRECON_ variable is one the code reads, and the reconciler's desk asks
// the receivers' readiness through a Service that selects them.
func TestKubernetesManifests(t *testing.T) {
	code := goSource(t)
	for _, file := range []string{"kubernetes/knetrecon.yaml", "kubernetes/knetrecon-cluster.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			docs := readManifests(t, file)
			services := map[string]k8sDoc{}
			for _, d := range docs {
				if d.Kind == "Service" {
					services[d.Metadata.Name] = d
				}
			}
			if len(docs) < 4 {
				t.Fatalf("%d documents", len(docs))
			}
			for _, d := range docs {
				if _, ok := services[d.Spec.ServiceName]; d.Kind == "StatefulSet" && !ok {
					t.Errorf("StatefulSet %s names Service %q, which the manifests do not define", d.Metadata.Name, d.Spec.ServiceName)
				}
				for _, c := range d.Spec.Template.Spec.Containers {
					if name, tag, ok := strings.Cut(c.Image, ":"); !ok || name == "" || tag == "" || tag == "latest" {
						t.Errorf("%s: image %q is not pinned to a tag", c.Name, c.Image)
					}
					ports := map[string]bool{}
					for _, p := range c.Ports {
						ports[p.Name] = true
					}
					probes := 0
					for _, p := range []*k8sProbe{c.ReadinessProbe, c.LivenessProbe} {
						if p == nil {
							continue
						}
						probes++
						if name, isName := p.HTTPGet.Port.(string); isName && !ports[name] {
							t.Errorf("%s: a probe names port %q, not one of its ports", c.Name, name)
						}
					}
					if probes != 2 {
						t.Errorf("%s: %d probes, want readiness and liveness", c.Name, probes)
					}
					for _, e := range c.Env {
						// NATS's are the passwords its configuration reads (TestNATSConfigWired).
						if c.role() != "nats" && strings.HasPrefix(e.Name, "KNETRECON_") && !knownVariable(code, e.Name) {
							t.Errorf("%s: %s is not a variable the code reads", c.Name, e.Name)
						}
					}
				}
			}
			receivers := workloads(docs, "receiver")
			if len(receivers) != 1 {
				t.Fatalf("%d receiver workloads, want 1", len(receivers))
			}
			for _, d := range workloads(docs, "reconciler") {
				e, _ := d.Spec.Template.Spec.Containers[0].env("KNETRECON_RECEIVER_HEALTH_URL")
				u, err := url.Parse(e.Value)
				if err != nil || u.Path != "/readyz" {
					t.Errorf("%s: KNETRECON_RECEIVER_HEALTH_URL %q is not a receiver's /readyz", d.Metadata.Name, e.Value)
					continue
				}
				svc, ok := services[u.Hostname()]
				if !ok || !selects(svc.selectorLabels(), receivers[0].Spec.Template.Metadata.Labels) {
					t.Errorf("%s: KNETRECON_RECEIVER_HEALTH_URL names %q, not a Service of the receivers", d.Metadata.Name, u.Hostname())
					continue
				}
				port := cmp.Or(u.Port(), "80")
				if !slices.ContainsFunc(svc.Spec.Ports, func(p k8sServicePort) bool { return strconv.Itoa(p.Port) == port }) {
					t.Errorf("%s: KNETRECON_RECEIVER_HEALTH_URL's port %s is not one of Service %s's", d.Metadata.Name, port, svc.Metadata.Name)
				}
			}
		})
	}
}

// natsAddrs returns the host:port addresses of a NATS URL list, sorted.
func natsAddrs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, strings.TrimPrefix(u, "nats://"))
		}
	}
	slices.Sort(out)
	return out
}

// TestKubernetesCluster checks the shape the cluster manifest promises: three NATS servers routing
// to each other with a volume each, receivers writing three replicas, reconcilers each with its own
// consumer and ledger volume and the same fact keys, budgets that let a drain proceed without
// losing a NATS majority, and pods spread over nodes.
func TestKubernetesCluster(t *testing.T) {
	docs := readManifests(t, "kubernetes/knetrecon-cluster.yaml")
	services := map[string]k8sDoc{}
	for _, d := range docs {
		if d.Kind == "Service" {
			services[d.Metadata.Name] = d
		}
	}
	one := func(role string) (k8sDoc, k8sContainer) {
		t.Helper()
		ws := workloads(docs, role)
		if len(ws) != 1 {
			t.Fatalf("%d %s workloads, want 1", len(ws), role)
		}
		return ws[0], ws[0].Spec.Template.Spec.Containers[0]
	}
	replicas := func(d k8sDoc) int {
		if d.Spec.Replicas == nil {
			return 1
		}
		return *d.Spec.Replicas
	}
	claims := func(d k8sDoc) map[string]bool {
		out := map[string]bool{}
		for _, v := range d.Spec.VolumeClaimTemplates {
			out[v.Metadata.Name] = true
		}
		return out
	}
	podName := func(c k8sContainer, name string) bool {
		e, ok := c.env(name)
		return ok && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	}

	nats, nc := one("nats")
	if nats.Kind != "StatefulSet" || replicas(nats) != 3 {
		t.Errorf("NATS is a %s of %d, want a StatefulSet of 3", nats.Kind, replicas(nats))
	}
	if svc, ok := services[nats.Spec.ServiceName]; !ok || svc.Spec.ClusterIP != "None" {
		t.Errorf("NATS's Service %q is not headless: the routes need each server's own name", nats.Spec.ServiceName)
	}
	conf := k8sNATSConf(t, docs, nats, nc)
	sd := conf.checkDurable(t, nats.Metadata.Name)
	cluster := conf.block("cluster")
	if natsValue(cluster, "name") == "" || natsValue(cluster, "listen") == "" {
		t.Errorf("NATS's %s has no cluster name or listen address", conf.name)
	}
	// One template for three servers: the routes name all three (a server ignores its own).
	var wantRoutes, wantClients []string
	for i := range replicas(nats) {
		host := fmt.Sprintf("%s-%d.%s", nats.Metadata.Name, i, nats.Spec.ServiceName)
		wantRoutes, wantClients = append(wantRoutes, host+":6222"), append(wantClients, host+":4222")
	}
	// The configuration's $VARIABLES, as the container's environment sets them.
	envOf := func(v string) string {
		name, ok := strings.CutPrefix(v, "$")
		if !ok {
			return v
		}
		e, _ := nc.env(name)
		return e.Value
	}
	var routes []string
	for _, r := range strings.Split(strings.Trim(natsValue(cluster, "routes"), "[]"), ",") {
		routes = append(routes, envOf(strings.TrimSpace(r)))
	}
	if got := natsAddrs(strings.Join(routes, ",")); !slices.Equal(got, wantRoutes) {
		t.Errorf("NATS routes %v, want every server %v", got, wantRoutes)
	}
	name := envOf(natsValue(conf.text, "server_name"))
	if v, ok := strings.CutPrefix(name, "$("); !ok || !podName(nc, strings.TrimSuffix(v, ")")) {
		t.Errorf("NATS server name %q is not the pod's name: the servers must differ", name)
	}
	if sd == "" || !claims(nats)[nc.mountOf(sd)] {
		t.Errorf("NATS store dir %q is not on a volume claim of its own per server", sd)
	}

	recv, rc := one("receiver")
	if replicas(recv) < 2 {
		t.Errorf("%d receivers", replicas(recv))
	}
	if e, _ := rc.env("KNETRECON_STREAM_REPLICAS"); e.Value != "3" {
		t.Errorf("the receiver's KNETRECON_STREAM_REPLICAS is %q, want 3", e.Value)
	}
	if e, _ := rc.env("KNETRECON_NATS_URL"); !slices.Equal(natsAddrs(e.Value), wantClients) {
		t.Errorf("the receiver's KNETRECON_NATS_URL names %v, want %v", natsAddrs(e.Value), wantClients)
	}

	rec, cc := one("reconciler")
	if rec.Kind != "StatefulSet" || replicas(rec) < 2 {
		t.Errorf("reconcilers are a %s of %d, want a StatefulSet of 2 or more", rec.Kind, replicas(rec))
	}
	if e, _ := cc.env("KNETRECON_NATS_URL"); !slices.Equal(natsAddrs(e.Value), wantClients) {
		t.Errorf("the reconciler's KNETRECON_NATS_URL names %v, want %v", natsAddrs(e.Value), wantClients)
	}
	if !podName(cc, "KNETRECON_CONSUMER") {
		t.Errorf("the reconciler's KNETRECON_CONSUMER is not the pod's name: every pod would share one consumer")
	}
	if e, _ := cc.env("KNETRECON_LEDGER"); e.Value == "" || !claims(rec)[cc.mountOf(e.Value)] {
		t.Errorf("the ledger %q is not on a volume claim of each pod's own", e.Value)
	}
	if e, _ := cc.env("KNETRECON_SWEEP_LEASE_TTL"); e.Value == "" {
		t.Errorf("no KNETRECON_SWEEP_LEASE_TTL")
	} else if d, err := time.ParseDuration(e.Value); err != nil || d <= 0 {
		t.Errorf("KNETRECON_SWEEP_LEASE_TTL %q is not a positive duration", e.Value)
	}
	// The fact keys: a file of a Secret volume (one source for every pod), never a claim.
	factKeys, _ := cc.env("KNETRECON_FACT_KEYS_FILE")
	vol := cc.mountOf(factKeys.Value)
	fromSecret := false
	for _, v := range rec.Spec.Template.Spec.Volumes {
		if v.Name != vol || v.Secret == nil {
			continue
		}
		for _, m := range cc.VolumeMounts {
			if m.Name == vol {
				rel := strings.TrimPrefix(strings.TrimPrefix(factKeys.Value, m.MountPath), "/")
				fromSecret = len(v.Secret.Items) == 0 ||
					slices.ContainsFunc(v.Secret.Items, func(it k8sSecretItem) bool { return it.Path == rel })
			}
		}
	}
	if factKeys.Value == "" || !fromSecret {
		t.Errorf("KNETRECON_FACT_KEYS_FILE %q is not a file of a Secret volume", factKeys.Value)
	}

	for _, d := range []k8sDoc{nats, recv, rec} {
		labels := d.Spec.Template.Metadata.Labels
		var budgets []k8sDoc
		for _, b := range docs {
			if b.Kind == "PodDisruptionBudget" && selects(b.selectorLabels(), labels) {
				budgets = append(budgets, b)
			}
		}
		if len(budgets) != 1 {
			t.Errorf("%s: %d disruption budgets, want 1", d.Metadata.Name, len(budgets))
			continue
		}
		// At least a majority of NATS (every PubAck of an R3 stream needs one), at least one of
		// the others, and fewer than all, or a node drain could never proceed.
		n, ok := budgets[0].Spec.MinAvailable.(int)
		floor := 1
		if d.Metadata.Name == nats.Metadata.Name {
			floor = replicas(d)/2 + 1
		}
		if !ok || n < floor || n >= replicas(d) {
			t.Errorf("%s: minAvailable %v, want %d or more and under %d replicas", d.Metadata.Name, budgets[0].Spec.MinAvailable, floor, replicas(d))
		}
		spread := slices.ContainsFunc(d.Spec.Template.Spec.Affinity.PodAntiAffinity.Preferred, func(p k8sSpread) bool {
			return p.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && selects(p.PodAffinityTerm.LabelSelector.MatchLabels, labels)
		})
		if !spread {
			t.Errorf("%s: no preferred anti-affinity across nodes", d.Metadata.Name)
		}
	}
}

// The parts of a compose file the tests look at (extension fields and anchors are resolved by the
// decoder).
type (
	composeService struct {
		Image       string            `yaml:"image"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Secrets     []string          `yaml:"secrets"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	}
	composeFile struct {
		Services map[string]composeService `yaml:"services"`
		Secrets  map[string]struct {
			File string `yaml:"file"`
		} `yaml:"secrets"`
		Volumes map[string]any `yaml:"volumes"`
	}
)

func readCompose(t *testing.T, path string) composeFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// role is what a service runs: receiver, reconciler, nats, or "".
func (s composeService) role() string {
	if strings.HasPrefix(s.Image, "nats:") {
		return "nats"
	}
	if len(s.Entrypoint) > 0 {
		return filepath.Base(s.Entrypoint[0])
	}
	return ""
}

// volumeAt returns the named volume that holds path in the service (the deepest mount above it),
// or "" when none does or it is a host directory.
func (s composeService) volumeAt(path string) string {
	best, name := "", ""
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		src, dst := parts[0], parts[1]
		if (path == dst || strings.HasPrefix(path, strings.TrimSuffix(dst, "/")+"/")) && len(dst) > len(best) {
			best, name = dst, src
		}
	}
	if strings.ContainsAny(name, "/.~$") {
		return ""
	}
	return name
}

// portOf returns the port of a listen address like ":9091".
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// checkReceiverHealthURL: the reconciler's desk asks a receiver service's /readyz on a port the
// receiver listens on.
func checkReceiverHealthURL(t *testing.T, c composeFile, name string) {
	t.Helper()
	raw := c.Services[name].Environment["KNETRECON_RECEIVER_HEALTH_URL"]
	u, err := url.Parse(raw)
	if err != nil || u.Path != "/readyz" {
		t.Errorf("service %s: KNETRECON_RECEIVER_HEALTH_URL %q is not a receiver's /readyz", name, raw)
		return
	}
	r, ok := c.Services[u.Hostname()]
	if !ok || r.role() != "receiver" {
		t.Errorf("service %s: KNETRECON_RECEIVER_HEALTH_URL names %q, not a receiver service", name, u.Hostname())
		return
	}
	addr := cmp.Or(r.Environment["KNETRECON_RECEIVER_ADDR"], ":8080")
	if p := u.Port(); p != portOf(addr) && p != portOf(r.Environment["KNETRECON_METRICS_ADDR"]) {
		t.Errorf("service %s: KNETRECON_RECEIVER_HEALTH_URL's port %s is not one %s listens on", name, p, u.Hostname())
	}
}

// TestComposeAndIgnores: the compose services have health checks and publish only the webhook
// port beyond 127.0.0.1; their variables exist; the reconciler's desk asks the receiver's
// readiness; local data and secrets stay out of the image's build context and of git.
func TestComposeAndIgnores(t *testing.T) {
	compose := readCompose(t, "compose.yaml")
	code := goSource(t)
	for _, name := range []string{"nats", "receiver", "reconciler"} {
		s, ok := compose.Services[name]
		if !ok || s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no health check", name)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") && p != "8080:8080" {
				t.Errorf("service %s publishes %s beyond the host", name, p)
			}
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "KNETRECON_") && !knownVariable(code, k) {
				t.Errorf("service %s: %s is not a variable the code reads", name, k)
			}
		}
	}
	checkReceiverHealthURL(t, compose, "reconciler")
	for file, want := range map[string][]string{"../.dockerignore": {"data/", "deploy/secrets/", ".git"}, "../.gitignore": {"/deploy/secrets/", "/data/"}} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s lacks %s", file, w)
			}
		}
	}
}

// TestComposeCluster checks the shape the cluster stack promises: three NATS servers, each routing
// to the other two with a volume of its own; receivers writing three replicas; reconcilers each
// with its own consumer and ledger volume, the same fact keys, and the sweep's lease; only the
// receivers' webhook ports beyond 127.0.0.1.
func TestComposeCluster(t *testing.T) {
	c := readCompose(t, "compose.cluster.yaml")
	code := goSource(t)
	byRole := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		s := c.Services[name]
		byRole[s.role()] = append(byRole[s.role()], name)
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("service %s has no health check", name)
		}
		for _, p := range s.Ports {
			if strings.HasPrefix(p, "127.0.0.1:") {
				continue
			}
			// Beyond the host: only a receiver's webhook port.
			_, container, _ := strings.Cut(p, ":")
			if s.role() != "receiver" || container != portOf(cmp.Or(s.Environment["KNETRECON_RECEIVER_ADDR"], ":8080")) {
				t.Errorf("service %s publishes %s beyond the host", name, p)
			}
		}
		for k := range s.Environment {
			if strings.HasPrefix(k, "KNETRECON_") && !knownVariable(code, k) {
				t.Errorf("service %s: %s is not a variable the code reads", name, k)
			}
		}
	}
	if len(byRole["nats"]) != 3 || len(byRole["receiver"]) < 2 || len(byRole["reconciler"]) < 2 {
		t.Fatalf("services by role %v: want 3 NATS servers, 2 or more receivers and reconcilers", byRole)
	}

	var clients []string
	serverNames, natsVolumes := map[string]bool{}, map[string]bool{}
	for _, name := range byRole["nats"] {
		s := c.Services[name]
		clients = append(clients, name+":4222")
		conf := composeNATSConf(t, c, name)
		sd := conf.checkDurable(t, name)
		cluster := conf.block("cluster")
		if v := natsValue(cluster, "name"); v != "knetrecon" {
			t.Errorf("%s: cluster name %q, want knetrecon", name, v)
		}
		if natsValue(cluster, "listen") == "" {
			t.Errorf("%s has no cluster listen address", name)
		}
		envOf := func(v string) string {
			if name, ok := strings.CutPrefix(v, "$"); ok {
				return s.Environment[name]
			}
			return v
		}
		sn := envOf(natsValue(conf.text, "server_name"))
		if sn == "" || serverNames[sn] {
			t.Errorf("%s: server name %q is empty or another server's", name, sn)
		}
		serverNames[sn] = true
		// Every server, itself included (a server ignores its route to itself).
		var want, routes []string
		for _, other := range byRole["nats"] {
			want = append(want, other+":6222")
		}
		for _, r := range strings.Split(strings.Trim(natsValue(cluster, "routes"), "[]"), ",") {
			routes = append(routes, envOf(strings.TrimSpace(r)))
		}
		if got := natsAddrs(strings.Join(routes, ",")); !slices.Equal(got, want) {
			t.Errorf("%s routes to %v, want every server %v", name, got, want)
		}
		vol := s.volumeAt(sd)
		if _, defined := c.Volumes[vol]; sd == "" || vol == "" || !defined || natsVolumes[vol] {
			t.Errorf("%s: store dir %q is not on a named volume of its own (%q)", name, sd, vol)
		}
		natsVolumes[vol] = true
	}
	slices.Sort(clients)

	for _, name := range byRole["receiver"] {
		env := c.Services[name].Environment
		if env["KNETRECON_STREAM_REPLICAS"] != "3" {
			t.Errorf("%s: KNETRECON_STREAM_REPLICAS %q, want 3", name, env["KNETRECON_STREAM_REPLICAS"])
		}
		if got := natsAddrs(env["KNETRECON_NATS_URL"]); !slices.Equal(got, clients) {
			t.Errorf("%s: KNETRECON_NATS_URL names %v, want every server %v", name, got, clients)
		}
	}

	consumers, ledgers, factSources := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, name := range byRole["reconciler"] {
		s := c.Services[name]
		env := s.Environment
		if got := natsAddrs(env["KNETRECON_NATS_URL"]); !slices.Equal(got, clients) {
			t.Errorf("%s: KNETRECON_NATS_URL names %v, want every server %v", name, got, clients)
		}
		if cons := env["KNETRECON_CONSUMER"]; cons == "" || consumers[cons] {
			t.Errorf("%s: KNETRECON_CONSUMER %q is empty or another reconciler's: each needs its own", name, cons)
		} else {
			consumers[cons] = true
		}
		ledger := env["KNETRECON_LEDGER"]
		vol := s.volumeAt(filepath.Dir(ledger))
		if _, defined := c.Volumes[vol]; ledger == "" || vol == "" || !defined || ledgers[vol] || natsVolumes[vol] {
			t.Errorf("%s: the ledger %q is not on a named volume of its own (%q)", name, ledger, vol)
		}
		ledgers[vol] = true
		keys := env["KNETRECON_FACT_KEYS_FILE"]
		secret, ok := strings.CutPrefix(keys, "/run/secrets/")
		if !ok || !slices.Contains(s.Secrets, secret) || c.Secrets[secret].File == "" {
			t.Errorf("%s: KNETRECON_FACT_KEYS_FILE %q is not a secret file the service mounts", name, keys)
		}
		factSources[c.Secrets[secret].File] = true
		if d, err := time.ParseDuration(env["KNETRECON_SWEEP_LEASE_TTL"]); err != nil || d <= 0 {
			t.Errorf("%s: KNETRECON_SWEEP_LEASE_TTL %q is not a positive duration", name, env["KNETRECON_SWEEP_LEASE_TTL"])
		}
		checkReceiverHealthURL(t, c, name)
	}
	if len(factSources) != 1 {
		t.Errorf("the reconcilers' fact keys come from %d files, want one shared: %v", len(factSources), slices.Sorted(maps.Keys(factSources)))
	}
}
