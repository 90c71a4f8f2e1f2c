package desk_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"knetrecon/internal/store"
)

// chromium finds Debian's Chromium; CI installs it (.ci/run), elsewhere the test is skipped.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no Chromium on the CI machine: .ci/run installs Debian's chromium package")
	}
	t.Skip("no Chromium here (apt-get install chromium): the browser test is skipped")
	return ""
}

// TestInABrowser drives the page in a real headless Chromium: the home page with its chart, a
// search by merchant reference that lands on the payment's timeline, a discrepancy resolved
// through the form, the payments list, a dead letter discarded, and no error in the console. With KNETRECON_SCREENSHOTS=1 it writes the
// pages' screenshots into docs/.
func TestInABrowser(t *testing.T) {
	bin := chromium(t)
	p := newPage(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// Every console message of the tab, read in the background (errors and uncaught exceptions fail the test).
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var consoleErrors []string
	consoleCtx, stopConsole := context.WithCancel(ctx)
	defer stopConsole()
	go func() {
		for m, err := range chromedp.Console(consoleCtx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				mu.Lock()
				consoleErrors = append(consoleErrors, string(m.Type)+": "+m.Text)
				mu.Unlock()
			}
		}
	}()
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			if os.Getenv("KNETRECON_SCREENSHOTS") == "" {
				return nil
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644)
		})
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(p.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#chart`)), shot("desk-home.png")); err != nil {
		t.Fatal(err)
	}
	rects, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#chart rect').length`))
	if err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || rects != 30 || !strings.Contains(title, "knetrecon") {
		t.Fatalf("home: %d bars, title %q, %v", rects, title, err)
	}
	// Search by the merchant's reference: straight to the payment's timeline.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`header input[name=q]`), "ORD-pay_2"),
		chromedp.Submit(chromedp.CSS(`header form`)), chromedp.WaitVisible(chromedp.CSS(`#timeline`)), shot("desk-payment.png")); err != nil {
		t.Fatal(err)
	}
	timeline, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#timeline`)))
	if err != nil || !strings.Contains(timeline, "payment_captured") || !strings.Contains(timeline, "payment_expired") {
		t.Fatalf("timeline %v:\n%s", err, timeline)
	}
	// Resolve its discrepancy through the form.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#payment-discrepancies input[name=note]`), "customer refunded by hand, ticket 7"),
		chromedp.Submit(chromedp.CSS(`#payment-discrepancies form`)),
		chromedp.WaitVisible(chromedp.CSS(`#payment-discrepancies`))); err != nil {
		t.Fatal(err)
	}
	var resolved string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(resolved, "by hand (desk)") && time.Now().Before(deadline) {
		resolved, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#payment-discrepancies`)))
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(resolved, "by hand (desk): customer refunded by hand, ticket 7") {
		t.Fatalf("after resolving:\n%s", resolved)
	}
	// The payments list through the header's link, filtered by status.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`header a[href="/payments"]`)), chromedp.WaitVisible(chromedp.CSS(`#payments-list`)),
		shot("desk-payments.png")); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#payments-list a').length`))
	if err != nil || rows != 2 {
		t.Fatalf("payments list: %d rows, %v", rows, err)
	}
	// A dead letter set aside from its page with a note.
	if err := p.ledger.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.AddDeadLetter(ctx, store.DeadLetter{StreamSeq: 41, Subject: "cko.webhooks.unknown", Reason: "not JSON: invalid character 'g'",
			Deliveries: 1, Body: []byte("garbage"), CreatedAt: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`header a[href="/dead-letters"]`)), chromedp.WaitVisible(chromedp.CSS(`#dead-letters`)),
		shot("desk-dead-letters.png"),
		chromedp.SendKeys(chromedp.CSS(`#dead-letters form[action$="/discard"] input[name=note]`), "test garbage from our load tool"),
		chromedp.Submit(chromedp.CSS(`#dead-letters form[action$="/discard"]`)), chromedp.WaitVisible(chromedp.CSS(`#flash`))); err != nil {
		t.Fatal(err)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#flash`)))
	if err != nil || !strings.Contains(flash, "discarded") {
		t.Fatalf("after discarding: %q %v", flash, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) != 0 {
		t.Fatalf("console errors: %v", consoleErrors)
	}
}
