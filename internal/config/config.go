// Package config binds each setting to a command-line flag and a KNETRECON_… environment
// variable, the way every knetrecon command takes its configuration: a flag wins over the
// variable, the variable over the default. Secrets may also come from a file (…_FILE).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Binder registers settings on a FlagSet with their environment variables as defaults.
type Binder struct {
	fs      *flag.FlagSet
	getenv  func(string) string
	errs    []error
	secrets []secret
	// Vars lists every variable bound, in order, for documentation and tests.
	Vars []Var
}

// Var describes one bound setting.
type Var struct {
	Flag, Env, Default, Usage string
	Secret                    bool
}

type secret struct {
	p                *string
	env, flagName    string
	fileFlag, direct *string
}

// NewBinder returns a Binder over fs reading variables through getenv (os.Getenv in main, a map
// in tests).
func NewBinder(fs *flag.FlagSet, getenv func(string) string) *Binder {
	if getenv == nil {
		getenv = os.Getenv
	}
	return &Binder{fs: fs, getenv: getenv}
}

func (b *Binder) usage(env, usage string) string {
	return usage + " (env " + env + ")"
}

func (b *Binder) record(name, env, def, usage string, secret bool) {
	b.Vars = append(b.Vars, Var{Flag: name, Env: env, Default: def, Usage: usage, Secret: secret})
}

// String binds a string setting.
func (b *Binder) String(p *string, name, env, def, usage string) {
	b.record(name, env, def, usage, false)
	if v, ok := b.lookup(env); ok {
		def = v
	}
	b.fs.StringVar(p, name, def, b.usage(env, usage))
}

// Int binds an integer setting.
func (b *Binder) Int(p *int, name, env string, def int, usage string) {
	b.record(name, env, strconv.Itoa(def), usage, false)
	if v, ok := b.lookup(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	b.fs.IntVar(p, name, def, b.usage(env, usage))
}

// Int64 binds a 64-bit integer setting.
func (b *Binder) Int64(p *int64, name, env string, def int64, usage string) {
	b.record(name, env, strconv.FormatInt(def, 10), usage, false)
	if v, ok := b.lookup(env); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q is not an integer", env, v))
		} else {
			def = n
		}
	}
	b.fs.Int64Var(p, name, def, b.usage(env, usage))
}

// Duration binds a duration setting ("90s", "7m", "72h").
func (b *Binder) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	b.record(name, env, def.String(), usage, false)
	if v, ok := b.lookup(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q is not a duration like 90s or 7m", env, v))
		} else {
			def = d
		}
	}
	b.fs.DurationVar(p, name, def, b.usage(env, usage))
}

// Bool binds a boolean setting.
func (b *Binder) Bool(p *bool, name, env string, def bool, usage string) {
	b.record(name, env, strconv.FormatBool(def), usage, false)
	if v, ok := b.lookup(env); ok {
		x, err := strconv.ParseBool(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q is not true or false", env, v))
		} else {
			def = x
		}
	}
	b.fs.BoolVar(p, name, def, b.usage(env, usage))
}

// secretValue is a flag holding a secret: its String is always empty, so usage (-h, a mistyped
// flag) never prints a value taken from the environment as the flag's default.
type secretValue struct{ p *string }

func (v secretValue) String() string { return "" }

func (v secretValue) Set(s string) error { *v.p = s; return nil }

// Secret binds a secret setting: flag name or name-file, variable env or env_FILE. The value is
// read from the file by Finish, after the flags are parsed. Setting both the value and the file is
// an error. Secrets are never part of an error message, nor of the usage text. Prefer the
// variable or the file: a value given as a flag shows in `ps`.
func (b *Binder) Secret(p *string, name, env, usage string) {
	b.record(name, env, "", usage, true)
	s := secret{p: p, env: env, flagName: name, fileFlag: new(string), direct: p}
	defDirect, _ := b.lookup(env)
	defFile, _ := b.lookup(env + "_FILE")
	*p = defDirect
	b.fs.Var(secretValue{p}, name, b.usage(env, usage))
	b.fs.StringVar(s.fileFlag, name+"-file", defFile, "file holding the value of --"+name+" (env "+env+"_FILE)")
	b.secrets = append(b.secrets, s)
}

// FileOf returns the file a secret bound to env is read from (its --…-file flag or env_FILE),
// or "" when it is given directly.
func (b *Binder) FileOf(env string) string {
	for _, s := range b.secrets {
		if s.env == env {
			return *s.fileFlag
		}
	}
	return ""
}

// Finish reads secret files and returns every error met while binding, each naming its variable.
// Call it after fs.Parse.
func (b *Binder) Finish() error {
	for _, s := range b.secrets {
		if *s.fileFlag == "" {
			continue
		}
		if *s.direct != "" {
			b.errs = append(b.errs, fmt.Errorf("%s and %s_FILE are both set: choose one", s.env, s.env))
			continue
		}
		raw, err := os.ReadFile(*s.fileFlag)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s_FILE: %w", s.env, err))
			continue
		}
		*s.p = strings.TrimRight(string(raw), "\r\n")
	}
	return errors.Join(b.errs...)
}

func (b *Binder) lookup(env string) (string, bool) {
	v := strings.TrimSpace(b.getenv(env))
	return v, v != ""
}

// ShortUsage sets how fs answers: -h or --help among args lists every setting on w; any other
// parse error (a mistyped flag) prints nothing here, so that the caller's one line, made by
// UsageHint, is not scrolled away by a hundred settings. name is the program, as typed.
func ShortUsage(fs *flag.FlagSet, name string, args []string, w io.Writer) {
	if helpAsked(args) {
		fs.SetOutput(w)
		fs.Usage = func() {
			fmt.Fprintf(w, "Usage: %s [flags]\n\nSettings (a flag, or its KNETRECON_… variable):\n", name)
			fs.PrintDefaults()
		}
		return
	}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
}

// UsageHint returns a flag parse error with where to read the settings; flag.ErrHelp as it is.
func UsageHint(name string, err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w (`%s --help` lists the settings)", err, name)
}

// helpAsked reports whether args ask for help before any -- separator.
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}
