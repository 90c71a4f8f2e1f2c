package main

import (
	"time"

	"knetrecon/internal/desk"
)

// localTime writes t as the CLI's text shows a time to a person: in KNETRECON_REPORT_TZ with its
// offset, as the desk does ("2026-12-04 19:40:54 +03:00"). --json keeps RFC 3339.
func localTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(desk.TimeLayout)
}
