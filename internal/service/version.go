package service

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Build says what a binary was built from: the module's version, the VCS revision and time
// (when built from a git checkout, with a mark when the tree had changes), and Go's version.
type Build struct {
	Version, Revision, Time, GoVersion string
	Modified                           bool
}

// BuildOf reads the build information the Go toolchain embeds.
func BuildOf() Build {
	b := Build{Version: "(devel)", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the line `--version` prints.
func (b Build) String() string {
	rev := b.Revision
	if rev == "" {
		rev = "unknown revision"
	} else if len(rev) > 12 {
		rev = rev[:12]
	}
	if b.Modified {
		rev += "+changes"
	}
	s := fmt.Sprintf("%s (%s", b.Version, rev)
	if b.Time != "" {
		s += ", " + b.Time
	}
	return s + ", " + b.GoVersion + ")"
}

// VersionRequested reports whether args ask for the version (--version, -version or version).
func VersionRequested(args []string) bool {
	return len(args) > 0 && slices.Contains([]string{"--version", "-version", "version"}, args[0])
}

// RegisterBuildInfo registers knetrecon_build_info{binary,version,revision,go_version} = 1.
func RegisterBuildInfo(reg prometheus.Registerer, binary string) {
	b := BuildOf()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "knetrecon_build_info",
		Help: "Always 1: the binary, its version, VCS revision and Go version."}, []string{"binary", "version", "revision", "go_version"})
	g.WithLabelValues(binary, b.Version, b.Revision, b.GoVersion).Set(1)
	reg.MustRegister(g)
}
