package service_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"go.uber.org/zap"

	"knetrecon/internal/service"
)

// proc records how Run drove it.
type proc struct {
	runErr, closeErr error
	ran, closed      int
}

func (p *proc) Run(context.Context) error { p.ran++; return p.runErr }
func (p *proc) Close() error              { p.closed++; return p.closeErr }

func TestRunExitCodes(t *testing.T) {
	boom := errors.New("boom")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name       string
		cfg        service.Config
		p          proc
		code       int
		stderr     string
		ran, close int
	}{
		{name: "help", cfg: service.Config{Err: flag.ErrHelp}, code: 0},
		{name: "bad configuration", cfg: service.Config{Err: boom}, code: 2, stderr: "svc: configuration: boom"},
		{name: "bad log level", cfg: service.Config{LogLevel: "loud"}, code: 2, stderr: "KNETRECON_LOG_LEVEL"},
		{name: "does not start", cfg: service.Config{LogLevel: "error"}, p: proc{runErr: boom}, code: 1, ran: 1, close: 1},
		{name: "stops cleanly", cfg: service.Config{LogLevel: "error"}, code: 0, ran: 1, close: 1},
		{name: "stops badly", cfg: service.Config{LogLevel: "error"}, p: proc{closeErr: boom}, code: 1, ran: 1, close: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name = "svc"
			var stderr bytes.Buffer
			code := service.Run(cancelled, tt.cfg, &stderr, func(*zap.Logger) service.Process { return &tt.p })
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) || tt.p.ran != tt.ran || tt.p.closed != tt.close {
				t.Fatalf("exit %d, stderr %q, ran %d, closed %d; want %d, %q, %d, %d",
					code, stderr.String(), tt.p.ran, tt.p.closed, tt.code, tt.stderr, tt.ran, tt.close)
			}
		})
	}
}
