// Package service runs a long-lived command (the receiver, the simulator): its configuration
// error or help, its logger, start, the wait for SIGINT or SIGTERM, and a clean stop, each with
// its exit code.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"knetrecon/internal/logging"
)

// Process is what a command runs: Run starts it and returns once it serves; Close stops it and
// waits for it (also after a failed Run).
type Process interface {
	Run(ctx context.Context) error
	Close() error
}

// Config is what Main needs from a command's configuration.
type Config struct {
	// Name prefixes messages written before the logger exists ("receiver: configuration: …").
	Name string
	// Err is the configuration's parse error: flag.ErrHelp exits 0, any other exits 2.
	Err error
	// LogLevel and LogDevelopment make the logger (see logging.New).
	LogLevel       string
	LogDevelopment bool
}

// Main runs a process until SIGINT or SIGTERM and returns the exit code for os.Exit.
func Main(cfg Config, start func(*zap.Logger) Process) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return Run(ctx, cfg, os.Stderr, start)
}

// Run is Main until ctx ends, writing early errors to stderr: 0 after a clean stop or help, 1
// when the process does not start or does not stop cleanly, 2 for a configuration or logger
// error.
func Run(ctx context.Context, cfg Config, stderr io.Writer, start func(*zap.Logger) Process) int {
	if errors.Is(cfg.Err, flag.ErrHelp) {
		return 0
	}
	if cfg.Err != nil {
		fmt.Fprintf(stderr, "%s: configuration: %v\n", cfg.Name, cfg.Err)
		return 2
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogDevelopment)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cfg.Name, err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	p := start(log)
	if err := p.Run(ctx); err != nil {
		log.Error(cfg.Name+" did not start", zap.Error(err))
		_ = p.Close()
		return 1
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := p.Close(); err != nil {
		log.Error("shutdown", zap.Error(err))
		return 1
	}
	log.Info("stopped")
	return 0
}
