package events

import "testing"

func TestRedactURL(t *testing.T) {
	tests := []struct{ give, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://user:pa55@nats:4222", "nats://[REDACTED]@nats:4222"},
		{"tls://a:b@x:1,nats://c@y:2", "tls://[REDACTED]@x:1,nats://[REDACTED]@y:2"},
	}
	for _, tt := range tests {
		if got := redactURL(tt.give); got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
