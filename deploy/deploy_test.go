// Package deploy holds how knetrecon runs in production; its test keeps the alert rules honest.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Every metric an alert rule or the runbook names must be one the code registers: a renamed
// series would silently disarm an alert.
func TestAlertRulesNameRealMetrics(t *testing.T) {
	rules, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
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
	for _, src := range [][]byte{rules, readme} {
		for _, m := range names.FindAllString(string(src), -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
			if seen[base] {
				continue
			}
			seen[base] = true
			if !strings.Contains(code.String(), `"`+base+`"`) {
				t.Errorf("%s is named in the alert rules or README but no code registers it", base)
			}
		}
	}
	if len(seen) < 8 {
		t.Fatalf("only %d metric names found: %v", len(seen), seen)
	}
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

// TestKubernetesManifests parses every document of the manifests: each StatefulSet names a
// Service that exists, every image is pinned (a tag, never latest), every probe names a port of
// its container, and every KNETRECON_ variable is one the code reads.
func TestKubernetesManifests(t *testing.T) {
	raw, err := os.ReadFile("kubernetes/knetrecon.yaml")
	if err != nil {
		t.Fatal(err)
	}
	code := goSource(t)
	type probe struct {
		HTTPGet struct {
			Port any `yaml:"port"`
		} `yaml:"httpGet"`
	}
	type container struct {
		Name  string `yaml:"name"`
		Image string `yaml:"image"`
		Env   []struct {
			Name string `yaml:"name"`
		} `yaml:"env"`
		Ports []struct {
			Name string `yaml:"name"`
		} `yaml:"ports"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
	}
	type doc struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			ServiceName string `yaml:"serviceName"`
			Template    struct {
				Spec struct {
					Containers []container `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	services := map[string]bool{}
	var docs []doc
	for {
		var d doc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if d.APIVersion == "" || d.Kind == "" || d.Metadata.Name == "" {
			t.Fatalf("a document without apiVersion, kind or name: %+v", d)
		}
		if d.Kind == "Service" {
			services[d.Metadata.Name] = true
		}
		docs = append(docs, d)
	}
	if len(docs) < 4 {
		t.Fatalf("%d documents", len(docs))
	}
	for _, d := range docs {
		if d.Kind == "StatefulSet" && !services[d.Spec.ServiceName] {
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
			for _, p := range []*probe{c.ReadinessProbe, c.LivenessProbe} {
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
				if strings.HasPrefix(e.Name, "KNETRECON_") && !strings.Contains(code, `"`+strings.TrimSuffix(e.Name, "_FILE")+`"`) {
					t.Errorf("%s: %s is not a variable the code reads", c.Name, e.Name)
				}
			}
		}
	}
}

// TestComposeAndIgnores: the compose services have health checks and publish only the webhook
// port beyond 127.0.0.1; their variables exist; local data and secrets stay out of the image's
// build context and of git.
func TestComposeAndIgnores(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
			Ports       []string          `yaml:"ports"`
			Healthcheck *struct {
				Test []string `yaml:"test"`
			} `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
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
			if strings.HasPrefix(k, "KNETRECON_") && !strings.Contains(code, `"`+strings.TrimSuffix(k, "_FILE")+`"`) {
				t.Errorf("service %s: %s is not a variable the code reads", name, k)
			}
		}
	}
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
