package statement

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/unicode"
)

// readCSV decodes a CSV file (its encoding and separator given by l or found) and splits it into
// rows, each with its line in the file.
func readCSV(raw []byte, l Layout, s Schema) (*source, error) {
	text, enc, err := decode(raw, l.Encoding)
	if err != nil {
		return nil, err
	}
	sep, _ := separator(l.Separator)
	if sep == 0 {
		sep = findSeparator(text, l, s)
	}
	name := map[rune]string{',': `","`, ';': `";"`, '\t': "tab", '|': `"|"`}[sep]
	return &source{format: fmt.Sprintf("CSV (%s, %s-separated)", enc, name), records: splitCSV(text, sep, -1)}, nil
}

// separators are the CSV separators found by themselves, in the order they are tried.
var separators = []rune{',', ';', '\t', '|'}

// findSeparator returns the separator with which a header row is found near the top, else the one
// that splits the top rows into the most cells (for the error that names them).
func findSeparator(text string, l Layout, s Schema) rune {
	best, bestSplits := ',', 0
	for _, sep := range separators {
		src := &source{records: splitCSV(text, sep, headerSearch)}
		if _, err := findHeader(src, l, s); err == nil {
			return sep
		}
		splits := 0
		for _, r := range src.records {
			splits += max(len(r.cells)-1, 0)
		}
		if splits > bestSplits {
			best, bestSplits = sep, splits
		}
	}
	return best
}

// decode returns the file as UTF-8 text without a byte-order mark, and names its encoding.
func decode(raw []byte, encoding string) (text, name string, err error) {
	enc := strings.ToLower(strings.TrimSpace(encoding))
	switch {
	case (enc == "" || enc == "utf-8" || enc == "utf8") && bytes.HasPrefix(raw, []byte("\xef\xbb\xbf")):
		raw, name = raw[3:], "UTF-8 with byte-order mark"
	case enc == "" && (bytes.HasPrefix(raw, []byte("\xff\xfe")) || bytes.HasPrefix(raw, []byte("\xfe\xff"))), enc == "utf-16":
		b, err := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewDecoder().Bytes(raw)
		if err != nil {
			return "", "", fmt.Errorf("%w: CSV (UTF-16): %v", ErrFormat, err)
		}
		return string(b), "UTF-16", nil
	case enc == "windows-1256" || enc == "cp1256" || enc == "" && !utf8.Valid(raw):
		b, err := charmap.Windows1256.NewDecoder().Bytes(raw)
		if err != nil {
			return "", "", fmt.Errorf("%w: CSV (Windows-1256): %v", ErrFormat, err)
		}
		return string(b), "Windows-1256", nil
	default:
		name = "UTF-8"
	}
	if !utf8.Valid(raw) {
		return "", "", fmt.Errorf("%w: CSV: not UTF-8 as the layout says (encoding = windows-1256?)", ErrFormat)
	}
	return string(raw), name, nil
}

// splitCSV splits text into rows (at most limit, all when limit < 0). The blank lines encoding/csv
// passes over are rows without cells, so that every row keeps its line; a row that cannot be split
// (a stray quote) is a row with its error, and the rows after it are read.
func splitCSV(text string, sep rune, limit int) []record {
	cr := csv.NewReader(strings.NewReader(text))
	cr.Comma = sep
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = sep != '\t' // else empty cells between tabs would vanish
	var out []record
	next := 1 // the line the next row starts on, unless blank lines come first
	for limit < 0 || len(out) < limit {
		cells, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			for ; next < perr.StartLine; next++ {
				out = append(out, record{line: next})
			}
			err := perr.Err
			if perr.Line > perr.StartLine {
				err = fmt.Errorf("%v (lines %d to %d)", perr.Err, perr.StartLine, perr.Line)
			}
			out = append(out, record{line: perr.StartLine, err: err})
			next = perr.Line + 1
			continue
		}
		if err != nil { // a strings.Reader fails no other way
			out = append(out, record{line: next, err: err})
			break
		}
		line, _ := cr.FieldPos(0)
		for ; next < line; next++ {
			out = append(out, record{line: next})
		}
		last, _ := cr.FieldPos(len(cells) - 1)
		next = last + strings.Count(cells[len(cells)-1], "\n") + 1
		out = append(out, record{line: line, cells: cells})
	}
	return out
}
