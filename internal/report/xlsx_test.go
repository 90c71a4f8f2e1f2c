package report_test

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xuri/excelize/v2"

	"knetrecon/internal/report"
)

// TestDailyXLSX opens the day's workbook as finance would and checks that it opens clean: every
// sheet's header frozen and filtered, every column at least as wide as what it shows, times as
// dates, amounts as numbers in their currency's decimals, refunds negative, no column mixing
// KWD and USD, and a SUM of a day's amount column equal to the day's net.
func TestDailyXLSX(t *testing.T) {
	l := ledgerOfTheDay(t)
	d, err := report.Build(context.Background(), l, "2026-11-25", kuwait, at(26, 0, 15))
	if err != nil {
		t.Fatal(err)
	}
	x := openXLSX(t, d.WriteXLSX)
	want := []string{"Summary", "Postings", "Late", "Payments", "Discrepancies", "About"}
	if got := x.GetSheetList(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sheets %v, want %v", got, want)
	}
	for _, sheet := range want {
		checkClean(t, x, sheet)
	}
	post := headers(t, x, "Postings")
	// act_b's capture: dates as dates in Kuwait's time, the amount a number.
	checkDate(t, x, "Postings", post["occurred_at"]+"3", "2026-11-25 13:05:00")
	checkDate(t, x, "Postings", post["counted_at"]+"3", "2026-11-25 15:00:00")
	checkNumber(t, x, "Postings", post["amount KWD"]+"3", "2.500", 2.5)
	checkNumber(t, x, "Postings", post["amount KWD"]+"4", "-0.500", -0.5)  // act_b_r, a refund
	if v := cellValue(t, x, "Postings", post["amount KWD"]+"6"); v != "" { // act_e_r, held
		t.Errorf("a held refund's amount %q, want blank (it moves nothing yet)", v)
	}
	checkNumber(t, x, "Postings", post["held KWD"]+"6", "-0.300", -0.3)
	checkNumber(t, x, "Postings", post["amount USD"]+"7", "19.99", 19.99) // two decimals
	if v := cellValue(t, x, "Postings", post["amount KWD"]+"7"); v != "" {
		t.Errorf("the USD capture in the KWD column: %q", v)
	}
	// The SUM of each currency's amount column is the day's net (the Late sheet's, the late part).
	checkSum(t, x, "Postings", post["amount KWD"], len(d.Postings), 7.000)
	checkSum(t, x, "Postings", post["amount USD"], len(d.Postings), 19.99)
	late := headers(t, x, "Late")
	checkSum(t, x, "Late", late["amount KWD"], len(d.LatePostings), 4.000)

	sum := headers(t, x, "Summary")
	if v := cellValue(t, x, "Summary", sum["currency"]+"2"); v != "KWD" {
		t.Fatalf("Summary's first row is %q, want KWD", v)
	}
	checkNumber(t, x, "Summary", sum["captured KWD"]+"2", "7.500", 7.5)
	checkNumber(t, x, "Summary", sum["refunded KWD"]+"2", "-0.500", -0.5)
	checkNumber(t, x, "Summary", sum["net KWD"]+"2", "7.000", 7)
	checkNumber(t, x, "Summary", sum["held KWD"]+"2", "-0.300", -0.3)
	checkNumber(t, x, "Summary", sum["of which late (net) KWD"]+"2", "4.000", 4)
	checkNumber(t, x, "Summary", sum["net USD"]+"3", "19.99", 19.99)

	about := headers(t, x, "About")
	rows, _ := x.GetRows("About")
	for i, r := range rows {
		switch r[0] {
		case "date":
			checkDate(t, x, "About", about["value"]+strconv.Itoa(i+1), "2026-11-25")
		case "generated at":
			checkDate(t, x, "About", about["value"]+strconv.Itoa(i+1), "2026-11-26 03:15:00")
		}
	}

	// An empty day opens as clean: headers, KWD's money columns, filters.
	empty, err := report.Build(context.Background(), l, "2026-11-10", kuwait, at(26, 0, 15))
	if err != nil {
		t.Fatal(err)
	}
	x = openXLSX(t, empty.WriteXLSX)
	for _, sheet := range x.GetSheetList() {
		checkClean(t, x, sheet)
	}
	if _, ok := headers(t, x, "Postings")["amount KWD"]; !ok {
		t.Fatal("an empty day's Postings sheet has no amount KWD column")
	}
}

// TestRangeXLSX: the range's workbook opens as clean as the day's; refunds negative, so that the
// captured and refunded columns add up to the net of the payments' money.
func TestRangeXLSX(t *testing.T) {
	l := ledgerOfTheDay(t)
	r, err := report.BuildRange(context.Background(), l, "2026-11-24", "2026-11-26", kuwait, at(27, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	x := openXLSX(t, r.WriteXLSX)
	if got := fmt.Sprint(x.GetSheetList()); got != "[Summary Payments About]" {
		t.Fatalf("sheets %s", got)
	}
	for _, sheet := range x.GetSheetList() {
		checkClean(t, x, sheet)
	}
	h := headers(t, x, "Payments")
	var captured, refunded int64
	for i, p := range r.Payments {
		row := strconv.Itoa(i + 2)
		if v := cellValue(t, x, "Payments", h["payment_id"]+row); v != p.ID {
			t.Fatalf("row %s is %q, want %s", row, v, p.ID)
		}
		if p.ID == "pay_b" {
			checkNumber(t, x, "Payments", h["refunded KWD"]+row, "-0.500", -0.5)
		}
		checkDate(t, x, "Payments", h["first_seen_at"]+row, p.FirstSeenAt.In(kuwait).Format(report.ExcelTime))
		if p.Currency == "KWD" {
			captured, refunded = captured+p.Captured, refunded+p.Refunded
		}
	}
	n := len(r.Payments)
	checkSum(t, x, "Payments", h["captured KWD"], n, float64(captured)/1000)
	checkSum(t, x, "Payments", h["refunded KWD"], n, -float64(refunded)/1000)
}

// openXLSX writes a workbook and opens it with excelize.
func openXLSX(t *testing.T, write func(io.Writer) error) *excelize.File {
	t.Helper()
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	x, err := excelize.OpenReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	filters[x] = autoFilters(t, raw)
	return x
}

// filters holds each opened workbook's filter ranges, by sheet file (sheet1.xml, …).
var filters = map[*excelize.File]map[string]string{}

// autoFilters reads the <autoFilter ref="…"> of each worksheet in the file: what Excel and
// LibreOffice read as the filters' range.
func autoFilters(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	z, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`<autoFilter ref="([^"]+)"`)
	out := map[string]string{}
	for _, f := range z.File {
		if !strings.HasPrefix(f.Name, "xl/worksheets/sheet") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if m := re.FindSubmatch(b); m != nil {
			out[strings.TrimPrefix(f.Name, "xl/worksheets/")] = string(m[1])
		}
	}
	return out
}

// checkClean checks a sheet's header row is frozen and filtered over the whole table, and that
// each column is wide enough for its header and every value it shows (at most 60 characters).
func checkClean(t *testing.T, x *excelize.File, sheet string) {
	t.Helper()
	panes, err := x.GetPanes(sheet)
	if err != nil || !panes.Freeze || panes.YSplit != 1 || panes.XSplit != 0 || panes.TopLeftCell != "A2" {
		t.Errorf("%s: panes %+v %v, want the header row frozen", sheet, panes, err)
	}
	rows, err := x.GetRows(sheet)
	if err != nil || len(rows) == 0 {
		t.Fatalf("%s: %d rows %v", sheet, len(rows), err)
	}
	cols := len(rows[0])
	idx, _ := x.GetSheetIndex(sheet)
	end, _ := excelize.CoordinatesToCellName(cols, max(len(rows), 2))
	// excelize writes the range with $ signs, as the defined name _FilterDatabase has it.
	if got := strings.ReplaceAll(filters[x][fmt.Sprintf("sheet%d.xml", idx+1)], "$", ""); got != "A1:"+end {
		t.Errorf("%s: filters on %q, want A1:%s", sheet, got, end)
	}
	if dim, err := x.GetSheetDimension(sheet); err != nil || dim != "A1:"+last(cols, len(rows)) {
		t.Errorf("%s: dimension %q %v, want A1:%s", sheet, dim, err, last(cols, len(rows)))
	}
	for c := 1; c <= cols; c++ {
		letter, _ := excelize.ColumnNumberToName(c)
		width, err := x.GetColWidth(sheet, letter)
		if err != nil {
			t.Fatal(err)
		}
		for r, row := range rows {
			if c > len(row) {
				continue
			}
			if n := utf8.RuneCountInString(row[c-1]); float64(n) > width && width < 60 {
				t.Errorf("%s column %s (%s) is %.0f wide, row %d shows %q", sheet, letter, rows[0][c-1], width, r+1, row[c-1])
			}
		}
	}
	// No money column mixes currencies: a cell under "… KWD" belongs to a KWD row.
	cur := -1
	for c, h := range rows[0] {
		if h == "currency" {
			cur = c
		}
	}
	for c, h := range rows[0] {
		suffix := h[strings.LastIndexByte(h, ' ')+1:]
		if cur < 0 || (suffix != "KWD" && suffix != "USD") {
			continue
		}
		for _, row := range rows[1:] {
			if c < len(row) && row[c] != "" && row[cur] != suffix {
				t.Errorf("%s: column %q holds %s of a %s row", sheet, h, row[c], row[cur])
			}
		}
	}
}

// last is the name of the cell in column cols, row rows.
func last(cols, rows int) string {
	ref, _ := excelize.CoordinatesToCellName(cols, rows)
	return ref
}

// headers maps a sheet's headers to their column letters.
func headers(t *testing.T, x *excelize.File, sheet string) map[string]string {
	t.Helper()
	rows, err := x.GetRows(sheet)
	if err != nil || len(rows) == 0 {
		t.Fatalf("%s: %v", sheet, err)
	}
	out := map[string]string{}
	for c, h := range rows[0] {
		out[h], _ = excelize.ColumnNumberToName(c + 1)
	}
	return out
}

func cellValue(t *testing.T, x *excelize.File, sheet, ref string) string {
	t.Helper()
	v, err := x.GetCellValue(sheet, ref)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkDate checks a cell holds a date (a number with a date format) that shows as want.
func checkDate(t *testing.T, x *excelize.File, sheet, ref, want string) {
	t.Helper()
	raw, _ := x.GetCellValue(sheet, ref, excelize.Options{RawCellValue: true})
	if _, err := strconv.ParseFloat(raw, 64); err != nil {
		t.Errorf("%s!%s holds %q, not a date", sheet, ref, raw)
	}
	if got := cellValue(t, x, sheet, ref); got != want {
		t.Errorf("%s!%s shows %q, want %q", sheet, ref, got, want)
	}
}

// checkNumber checks a cell holds the number want, shown as shown.
func checkNumber(t *testing.T, x *excelize.File, sheet, ref, shown string, want float64) {
	t.Helper()
	if typ, _ := x.GetCellType(sheet, ref); typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
		t.Errorf("%s!%s is of type %v, not a number", sheet, ref, typ)
	}
	raw, _ := x.GetCellValue(sheet, ref, excelize.Options{RawCellValue: true})
	if v, err := strconv.ParseFloat(raw, 64); err != nil || v != want {
		t.Errorf("%s!%s holds %q, want the number %v", sheet, ref, raw, want)
	}
	if got := cellValue(t, x, sheet, ref); got != shown {
		t.Errorf("%s!%s shows %q, want %q", sheet, ref, got, shown)
	}
}

// checkSum checks that SUM over the column's rows 2..rows+1, computed by the spreadsheet's own
// formula engine, is want.
func checkSum(t *testing.T, x *excelize.File, sheet, col string, rows int, want float64) {
	t.Helper()
	if col == "" {
		t.Fatalf("%s: no such column", sheet)
	}
	formula := fmt.Sprintf("SUM(%s2:%s%d)", col, col, rows+1)
	if err := x.SetCellFormula(sheet, "ZZ1", formula); err != nil {
		t.Fatal(err)
	}
	got, err := x.CalcCellValue(sheet, "ZZ1")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseFloat(got, 64)
	if err != nil || math.Abs(v-want) > 1e-9 {
		t.Errorf("%s: %s is %s, want %v", sheet, formula, got, want)
	}
	_ = x.SetCellValue(sheet, "ZZ1", nil)
}
