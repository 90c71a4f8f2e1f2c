package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// defaultReportMode is the daily and range reports' mode: the service user writes them, finance's
// group reads them, nobody else does (KNETRECON_REPORT_MODE).
const defaultReportMode = "0640"

// parseReportMode reads KNETRECON_REPORT_MODE: octal permission bits, which the owner can read
// and which nobody else may write (a report is evidence finance relies on).
func parseReportMode(s string) (os.FileMode, error) {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("KNETRECON_REPORT_MODE %q is not octal permission bits like 0640", s)
	}
	m := os.FileMode(n)
	if m&0o400 == 0 {
		return 0, fmt.Errorf("KNETRECON_REPORT_MODE %s: the service user must be able to read its reports", s)
	}
	if m&0o022 != 0 {
		return 0, fmt.Errorf("KNETRECON_REPORT_MODE %s: a report writable by its group or by anyone could be altered after it was written", s)
	}
	return m, nil
}

// setReportModes gives the report files just written (or found already written) the configured
// mode.
func setReportModes(paths []string, mode os.FileMode) error {
	var errs []error
	for _, p := range paths {
		if err := os.Chmod(p, mode); err != nil {
			errs = append(errs, fmt.Errorf("report mode: %w", err))
		}
	}
	return errors.Join(errs...)
}
