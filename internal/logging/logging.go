// Package logging builds the one *zap.Logger each knetrecon command passes down.
package logging

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON logger at level (debug, info, warn, error), or a console logger for people
// when dev is set. Logs go to standard error through a small buffer flushed every 250 ms, on any
// entry at error level or above, and by Sync: a busy receiver writes one line per webhook, and a
// write(2) for each would cost more than the webhook itself. Call Sync before the process exits.
func New(level string, dev bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("KNETRECON_LOG_LEVEL %q: want debug, info, warn or error", level)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if dev {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.Lock(os.Stderr), Size: 64 << 10, FlushInterval: 250 * time.Millisecond}
	core := zapcore.NewCore(enc, ws, zap.NewAtomicLevelAt(lvl))
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr)), zap.AddStacktrace(zapcore.ErrorLevel),
		zap.WrapCore(func(c zapcore.Core) zapcore.Core { return &flushOnError{Core: c, ws: ws} })), nil
}

// flushOnError writes entries at error level and above straight through, so that the last words
// of a process that is about to exit are never left in the buffer.
type flushOnError struct {
	zapcore.Core
	ws zapcore.WriteSyncer
}

// With keeps the flushing behaviour on derived loggers.
func (f *flushOnError) With(fields []zapcore.Field) zapcore.Core {
	return &flushOnError{Core: f.Core.With(fields), ws: f.ws}
}

// Check routes enabled entries through Write below.
func (f *flushOnError) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if f.Enabled(e.Level) {
		return ce.AddCore(e, f)
	}
	return ce
}

// Write writes the entry and flushes the buffer for errors and worse.
func (f *flushOnError) Write(e zapcore.Entry, fields []zapcore.Field) error {
	err := f.Core.Write(e, fields)
	if e.Level >= zapcore.ErrorLevel {
		_ = f.ws.Sync()
	}
	return err
}
