package statement_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"knetrecon/internal/statement"
)

// benchLines is the size of the statements read by BenchmarkRead: issue 19's 100,000 lines.
const benchLines = 100_000

// BenchmarkRead reads a statement of 100,000 lines in the sample bank's layout, as its CSV (a
// byte-order mark, every field quoted, title rows, a Total row) and as its xlsx (Excel dates,
// numbers), made once before the clock starts:
//
//	go test -run '^$' -bench Read ./internal/statement
func BenchmarkRead(b *testing.B) {
	l, err := statement.ParseLayout([]byte(exampleBank))
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []struct {
		name string
		make func(testing.TB) []byte
	}{{"csv", benchCSV}, {"xlsx", benchXLSX}} {
		raw := f.make(b)
		b.Run(fmt.Sprintf("%s-%d", f.name, benchLines), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for range b.N {
				tab, err := statement.Read(raw, l, schema, kuwait)
				if err != nil || len(tab.Rows) != benchLines || len(tab.Skipped) != 1 {
					b.Fatalf("%d rows, %d skipped, %v", len(tab.Rows), len(tab.Skipped), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchLines, "ns/line")
		})
	}
}

func benchCSV(testing.TB) []byte {
	var buf bytes.Buffer
	buf.WriteString("\ufeff\"Example Bank K.S.C.P. - KNET Merchant Settlement Statement\"\r\n\"Merchant: EXAMPLE TRADING CO. W.L.L.\",\"Merchant ID: 100200300\"\r\n\r\n")
	buf.WriteString(`"Transaction Date","Card No","Auth Code","Amount","Commission","Net Amount","Track ID","Reference No","Terminal ID"` + "\r\n")
	for i := range benchLines {
		fils := int64(i%99_997 + 1)
		fmt.Fprintf(&buf, "\"03/12/2026\",\"419772******%04d\",\"B%05d\",\"%d.%03d\",\"0.225\",\"%d.%03d\",\"ORD-%06d\",\"%012d\",\"10023456\"\r\n",
			i%10_000, i%100_000, fils/1000, fils%1000, fils/1000, fils%1000, i, 154335349840+i)
	}
	buf.WriteString("\"Total\",\"\",\"\",\"1.000\",\"\",\"\",\"\",\"\",\"\"\r\n")
	return buf.Bytes()
}

func benchXLSX(tb testing.TB) []byte {
	f := excelize.NewFile()
	defer f.Close()
	sw, err := f.NewStreamWriter("Sheet1")
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.SetSheetName("Sheet1", "Settlement"); err != nil {
		tb.Fatal(err)
	}
	dateStyle, err := f.NewStyle(&excelize.Style{NumFmt: 14})
	if err != nil {
		tb.Fatal(err)
	}
	row := func(n int, cells ...any) {
		cell, _ := excelize.CoordinatesToCellName(1, n)
		if err := sw.SetRow(cell, cells); err != nil {
			tb.Fatal(err)
		}
	}
	row(1, "Example Bank K.S.C.P. - KNET Merchant Settlement Statement")
	row(4, "Transaction Date", "Card No", "Auth Code", "Amount", "Commission", "Net Amount", "Track ID", "Reference No", "Terminal ID")
	day := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	for i := range benchLines {
		fils := float64(i%99_997+1) / 1000
		row(5+i, excelize.Cell{StyleID: dateStyle, Value: day}, fmt.Sprintf("419772******%04d", i%10_000), fmt.Sprintf("B%05d", i%100_000),
			fils, 0.225, fils-0.225, fmt.Sprintf("ORD-%06d", i), 154335349840+i, 10023456)
	}
	row(5+benchLines, "Total", "", "", 1.0)
	if err := sw.Flush(); err != nil {
		tb.Fatal(err)
	}
	b, err := f.WriteToBuffer()
	if err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}
