package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFlagOverEnvOverDefault(t *testing.T) {
	env := map[string]string{"X_ADDR": ":9", "X_N": "7", "X_D": "90s", "X_B": "true"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	b := NewBinder(fs, func(k string) string { return env[k] })
	var addr, other string
	var n int
	var d time.Duration
	var on bool
	b.String(&addr, "addr", "X_ADDR", ":1", "")
	b.String(&other, "other", "X_OTHER", "def", "")
	b.Int(&n, "n", "X_N", 1, "")
	b.Duration(&d, "d", "X_D", time.Second, "")
	b.Bool(&on, "b", "X_B", false, "")
	if err := fs.Parse([]string{"-addr", ":5"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	if addr != ":5" || other != "def" || n != 7 || d != 90*time.Second || !on {
		t.Fatalf("got %q %q %d %s %v", addr, other, n, d, on)
	}
	if len(b.Vars) != 5 || b.Vars[0].Env != "X_ADDR" {
		t.Fatalf("vars %+v", b.Vars)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	env := map[string]string{"X_N": "seven", "X_D": "5", "X_B": "maybe"}
	b := NewBinder(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string { return env[k] })
	var n int
	var d time.Duration
	var on bool
	b.Int(&n, "n", "X_N", 1, "")
	b.Duration(&d, "d", "X_D", time.Second, "")
	b.Bool(&on, "b", "X_B", false, "")
	err := b.Finish()
	for _, v := range []string{"X_N", "X_D", "X_B"} {
		if err == nil || !strings.Contains(err.Error(), v) {
			t.Errorf("error %v does not name %s", err, v)
		}
	}
}

func TestSecretFromFileNeverInErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(f, []byte("sk_from_file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	b := NewBinder(fs, func(k string) string { return map[string]string{"X_KEY_FILE": f}[k] })
	var key string
	b.Secret(&key, "key", "X_KEY", "")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Finish(); err != nil || key != "sk_from_file" {
		t.Fatalf("key %q, %v", key, err)
	}

	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	b = NewBinder(fs, func(k string) string { return map[string]string{"X_KEY": "sk_direct_secret", "X_KEY_FILE": f}[k] })
	b.Secret(&key, "key", "X_KEY", "")
	_ = fs.Parse(nil)
	err := b.Finish()
	if err == nil || !strings.Contains(err.Error(), "X_KEY_FILE") || strings.Contains(err.Error(), "sk_direct_secret") {
		t.Fatalf("both set: %v", err)
	}
}

// TestSecretNeverInUsage: a secret given through its variable is used, and is not printed by the
// usage text that -h or a mistyped flag shows; a flag still overrides it.
func TestSecretNeverInUsage(t *testing.T) {
	var out strings.Builder
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&out)
	b := NewBinder(fs, func(k string) string { return map[string]string{"X_KEY": "sk_env_secret_value"}[k] })
	var key string
	b.Secret(&key, "key", "X_KEY", "the key")
	if err := fs.Parse([]string{"--no-such-flag"}); err == nil {
		t.Fatal("a mistyped flag was accepted")
	}
	if !strings.Contains(out.String(), "-key") || strings.Contains(out.String(), "sk_env_secret_value") {
		t.Fatalf("usage printed the secret or no flag:\n%s", out.String())
	}
	if err := b.Finish(); err != nil || key != "sk_env_secret_value" {
		t.Fatalf("from the variable: %q %v", key, err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	b = NewBinder(fs, func(k string) string { return map[string]string{"X_KEY": "sk_env_secret_value"}[k] })
	b.Secret(&key, "key", "X_KEY", "the key")
	if err := fs.Parse([]string{"--key", "sk_flag"}); err != nil || b.Finish() != nil || key != "sk_flag" {
		t.Fatalf("the flag must win: %q %v", key, err)
	}
}

// TestShortUsage: a mistyped flag prints nothing but the caller's one line (its error names the
// flag and where the settings are listed); --help lists every setting with its variable.
func TestShortUsage(t *testing.T) {
	tests := []struct {
		give    []string
		wantErr string // "" for flag.ErrHelp
		wantOut string
	}{
		{give: []string{"--adr", ":1"}, wantErr: "flag provided but not defined: -adr (`prog --help` lists the settings)"},
		{give: []string{"--help"}, wantOut: "Usage: prog [flags]\n\nSettings (a flag, or its KNETRECON_… variable):\n  -addr string\n"},
	}
	for _, tt := range tests {
		var out strings.Builder
		fs := flag.NewFlagSet("prog", flag.ContinueOnError)
		ShortUsage(fs, "prog", tt.give, &out)
		var addr string
		NewBinder(fs, func(string) string { return "" }).String(&addr, "addr", "KNETRECON_X_ADDR", ":8080", "where to listen")
		err := UsageHint("prog", fs.Parse(tt.give))
		switch {
		case tt.wantErr == "" && err != flag.ErrHelp:
			t.Errorf("%v: err %v, want flag.ErrHelp", tt.give, err)
		case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
			t.Errorf("%v: err %v, want %q", tt.give, err, tt.wantErr)
		}
		if !strings.HasPrefix(out.String(), tt.wantOut) || (tt.wantOut == "" && out.Len() > 0) {
			t.Errorf("%v printed %q, want %q", tt.give, out.String(), tt.wantOut)
		}
	}
}
