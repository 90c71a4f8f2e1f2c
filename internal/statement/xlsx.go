package statement

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/xuri/excelize/v2"
)

// xlsxLimit bounds what a workbook may unzip to, kept in memory (no temporary files): far above
// any statement, far below what a zip bomb asks for.
const xlsxLimit = 1 << 30

// readXLSX splits a workbook's sheet (l.Sheet, else the first visible one) into rows numbered as
// the spreadsheet numbers them. Cells are raw values: an Excel date is its serial number and a
// number its stored digits, read as dates and amounts by the columns that hold them.
func readXLSX(raw []byte, l Layout) (*source, error) {
	f, err := excelize.OpenReader(bytes.NewReader(raw), excelize.Options{RawCellValue: true, UnzipSizeLimit: xlsxLimit, UnzipXMLSizeLimit: xlsxLimit})
	if err != nil {
		return nil, fmt.Errorf("%w: xlsx: %v", ErrFormat, err)
	}
	defer func() { _ = f.Close() }()
	sheets := f.GetSheetList()
	if len(sheets) == 0 {
		return nil, fmt.Errorf("%w: xlsx: the workbook has no sheet", ErrFormat)
	}
	sheet := ""
	if want := strings.TrimSpace(l.Sheet); want != "" {
		for _, s := range sheets {
			if strings.EqualFold(strings.TrimSpace(s), want) {
				sheet = s
			}
		}
		if sheet == "" {
			return nil, fmt.Errorf("%w: xlsx: no sheet %q; its sheets: %s", ErrFormat, want, quoteAll(sheets))
		}
	} else {
		sheet = sheets[0]
		for _, s := range sheets {
			if visible, err := f.GetSheetVisible(s); err == nil && visible {
				sheet = s
				break
			}
		}
	}
	src := &source{format: fmt.Sprintf("xlsx, sheet %q", sheet), xlsx: true}
	if p, err := f.GetWorkbookProps(); err == nil && p.Date1904 != nil {
		src.date1904 = *p.Date1904
	}
	rows, err := f.Rows(sheet)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, src.format, err)
	}
	for n := 1; rows.Next(); n++ {
		cells, err := rows.Columns(excelize.Options{RawCellValue: true})
		if err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("%w: %s: row %d: %v", ErrFormat, src.format, n, err)
		}
		src.records = append(src.records, record{line: n, cells: cells})
	}
	if err := rows.Error(); err != nil {
		_ = rows.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, src.format, err)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, src.format, err)
	}
	return src, nil
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
