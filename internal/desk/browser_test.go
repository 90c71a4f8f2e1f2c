package desk_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"knetrecon/internal/payment"
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

// browser starts a headless Chromium for t at 1280 px wide; errors and uncaught exceptions in
// its console fail the test at its end. shot writes a screenshot into docs/ when
// KNETRECON_SCREENSHOTS=1.
func browser(t *testing.T) (ctx context.Context, shot func(name string) chromedp.Action[chromedp.Void]) {
	t.Helper()
	bin := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless,
		chromedp.DisableGPU, chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("hide-scrollbars", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	// Every console message of the tab, read in the background.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var consoleErrors []string
	consoleCtx, stopConsole := context.WithCancel(ctx)
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
	t.Cleanup(func() {
		mu.Lock()
		errs := consoleErrors
		mu.Unlock()
		stopConsole()
		cancel()
		cancelTab()
		cancelAlloc()
		if len(errs) != 0 {
			t.Errorf("console errors: %v", errs)
		}
	})
	shot = func(name string) chromedp.Action[chromedp.Void] {
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
	return ctx, shot
}

// TestInABrowser drives the page in a real headless Chromium: the home page with its chart, a
// search by merchant reference that lands on the payment's timeline, a discrepancy resolved
// through the form and its confirmation, the payments list, a dead letter discarded, and no
// error in the console.
func TestInABrowser(t *testing.T) {
	ctx, _ := browser(t)
	p := newPage(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(p.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`#chart`))); err != nil {
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
		chromedp.Submit(chromedp.CSS(`header form`)), chromedp.WaitVisible(chromedp.CSS(`#timeline`))); err != nil {
		t.Fatal(err)
	}
	timeline, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#timeline`)))
	if err != nil || !strings.Contains(timeline, "payment_captured") || !strings.Contains(timeline, "payment_expired") {
		t.Fatalf("timeline %v:\n%s", err, timeline)
	}
	// Resolve its discrepancy through the form, then its confirmation.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#payment-discrepancies input[name=note]`), "customer refunded by hand, ticket 7"),
		chromedp.Submit(chromedp.CSS(`#payment-discrepancies form`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`#confirm-yes`)), chromedp.WaitVisible(chromedp.CSS(`#payment-discrepancies`))); err != nil {
		t.Fatal(err)
	}
	resolved, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#payment-discrepancies`)))
	if err != nil || !strings.Contains(resolved, "by hand (desk): customer refunded by hand, ticket 7") {
		t.Fatalf("after resolving %v:\n%s", err, resolved)
	}
	// The payments list through the header's link.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`header a[href="/payments"]`)), chromedp.WaitVisible(chromedp.CSS(`#payments-list`))); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#payments-list a').length`))
	if err != nil || rows != 2 {
		t.Fatalf("payments list: %d rows, %v", rows, err)
	}
	// A dead letter set aside from its page with a note, once confirmed.
	if err := p.ledger.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.AddDeadLetter(ctx, store.DeadLetter{StreamSeq: 41, Subject: "cko.webhooks.unknown", Reason: "not JSON: invalid character 'g'",
			Deliveries: 1, Body: []byte("garbage"), CreatedAt: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`header a[href="/dead-letters"]`)), chromedp.WaitVisible(chromedp.CSS(`#dead-letters`)),
		chromedp.SendKeys(chromedp.CSS(`#dead-letters form[action$="/discard"] input[name=note]`), "test garbage from our load tool"),
		chromedp.Submit(chromedp.CSS(`#dead-letters form[action$="/discard"]`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`#confirm-yes`)), chromedp.WaitVisible(chromedp.CSS(`#flash`))); err != nil {
		t.Fatal(err)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#flash`)))
	if err != nil || !strings.Contains(flash, "discarded") {
		t.Fatalf("after discarding: %q %v", flash, err)
	}
}

// TestInABrowserOnABadNight: the pages on-call opens during an incident (a payment Pending past
// KNET's window, a stuck one, an amount_mismatch with long ids and details, a dead letter) hold
// their shape at 1280 px and on a phone (390 px): nothing scrolls sideways. Then the
// confirmations, and the search by a lower-case reference and by an event id. With
// KNETRECON_SCREENSHOTS=1 it writes the README's screenshots into docs/.
func TestInABrowserOnABadNight(t *testing.T) {
	ctx, shot := browser(t)
	p := newPage(t, withSweep)
	dl := incident(t, p.ledger)
	pages := []struct{ path, wait, shot string }{
		{"/", "#chart", "desk-home.png"},
		{"/payments/pay_5", "#timeline", "desk-payment.png"},
		{"/payments/pay_4", "#timeline", ""},
		{"/payments", "#payments-list", "desk-payments.png"},
		{"/discrepancies?state=all", "#discrepancies-list", ""},
		{"/dead-letters", "#dead-letters", "desk-dead-letters.png"},
		{fmt.Sprintf("/dead-letters/%d", dl), "#body", "desk-dead-letter.png"},
		{"/search?q=ord-", "#hits", ""},
	}
	for _, w := range []struct {
		width, height int64
		phone         bool
	}{{1280, 900, false}, {1920, 1000, false}, {390, 844, true}} {
		opts := []chromedp.EmulateViewportOption{}
		if w.phone {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(w.width, w.height, opts...)); err != nil {
			t.Fatal(err)
		}
		for _, pg := range pages {
			if err := chromedp.Do(ctx, chromedp.Navigate(p.srv.URL+pg.path), chromedp.WaitVisible(chromedp.CSS(pg.wait))); err != nil {
				t.Fatalf("%s at %d px: %v", pg.path, w.width, err)
			}
			// The page, and every table's box: a table that scrolls inside its box is as bad.
			sizes, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[document.documentElement.scrollWidth, document.documentElement.clientWidth,
				[...document.querySelectorAll('.scroll, pre, dl')].filter(e => e.scrollWidth > e.clientWidth + 1).length]`))
			if err != nil {
				t.Fatal(err)
			}
			if sizes[2] > 0 {
				t.Errorf("%s at %d px: %d boxes scroll sideways inside", pg.path, w.width, sizes[2])
			}
			if sizes[0] > sizes[1] {
				wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right))`))
				t.Errorf("%s at %d px scrolls sideways: scrollWidth %d > clientWidth %d; too wide: %v", pg.path, w.width, sizes[0], sizes[1], wide)
			}
			name := ""
			switch {
			case w.width == 1280:
				name = pg.shot
			case w.phone && pg.path == "/":
				name = "desk-home-phone.png"
			}
			if name != "" {
				if err := chromedp.Do(ctx, shot(name)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatal(err)
	}
	// Search by a lower-case reference (stored as Ord-Mixed-77), then by an event id.
	for _, tt := range []struct{ give, want string }{{"ord-mixed-77", "pay_3"}, {"evt_40", "pay_4"}} {
		if err := chromedp.Do(ctx, chromedp.Navigate(p.srv.URL+"/"), chromedp.SendKeys(chromedp.CSS(`header input[name=q]`), tt.give),
			chromedp.Submit(chromedp.CSS(`header form`)), chromedp.WaitVisible(chromedp.CSS(`#timeline`))); err != nil {
			t.Fatal(err)
		}
		h1, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`h1`)))
		if err != nil || !strings.Contains(h1, tt.want) {
			t.Errorf("search %q landed on %q (%v), want %s", tt.give, h1, err, tt.want)
		}
	}
	// Resolving the stuck mark of a payment still open: the confirmation says it will reopen;
	// cancelled, nothing changed; confirmed, resolved.
	if err := chromedp.Do(ctx, chromedp.Navigate(p.srv.URL+"/"),
		chromedp.SendKeys(chromedp.CSS(`#open-list form[action$="/resolve"] input[name=note]`), "voided by hand in the hub"),
		chromedp.Submit(chromedp.CSS(`#open-list form[action$="/resolve"]`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)), shot("desk-confirm.png")); err != nil {
		t.Fatal(err)
	}
	confirm, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#confirm`)))
	if err != nil || !strings.Contains(confirm, "it reopens") && !strings.Contains(confirm, "reopens") {
		t.Fatalf("confirmation %v:\n%s", err, confirm)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#confirm-cancel`)), chromedp.WaitVisible(chromedp.CSS(`#chart`))); err != nil {
		t.Fatal(err)
	}
	if _, open, _ := p.ledger.OpenCounts(ctx); open[payment.KindAmountMismatch] != 1 {
		t.Fatalf("cancelled, yet open %v", open)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#open-list form[action$="/resolve"] input[name=note]`), "refund of 0.500 KWD sent"),
		chromedp.Submit(chromedp.CSS(`#open-list form[action$="/resolve"]`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`)),
		chromedp.Click(chromedp.CSS(`#confirm-yes`)), chromedp.WaitVisible(chromedp.CSS(`#chart`))); err != nil {
		t.Fatal(err)
	}
	if _, open, _ := p.ledger.OpenCounts(ctx); open[payment.KindAmountMismatch] != 0 {
		t.Fatalf("confirmed, yet open %v", open)
	}
	// Replay and discard of a dead letter, each confirmed.
	if err := chromedp.Do(ctx, chromedp.Navigate(p.srv.URL+"/dead-letters"),
		chromedp.SendKeys(chromedp.CSS(`#dead-letters form[action$="/discard"] input[name=note]`), "sent by our load tool"),
		chromedp.Submit(chromedp.CSS(`#dead-letters form[action$="/discard"]`)), chromedp.WaitVisible(chromedp.CSS(`#confirm`))); err != nil {
		t.Fatal(err)
	}
	if confirm, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#confirm`))); err != nil || !strings.Contains(confirm, "set aside for good") {
		t.Fatalf("discard confirmation %v:\n%s", err, confirm)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#confirm-yes`)), chromedp.WaitVisible(chromedp.CSS(`#flash`))); err != nil {
		t.Fatal(err)
	}
	if flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#flash`))); err != nil || !strings.Contains(flash, "discarded") {
		t.Fatalf("after discarding: %q %v", flash, err)
	}
}
