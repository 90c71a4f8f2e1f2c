package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Digest sums up what two replicas of the ledger must agree on: every table a person reads, row by
// row, every column the ledger writes while applying the stream (each comes from the stream: the
// message's time, the fact's contents). Left out are only this ledger's own row ids (a number an
// operator may type differs between replicas of different ages; rows referring to another row name
// it by its natural key instead) and a dead letter's delivery count (how often this ledger's
// consumer was handed the message). Two replicas applied as far (the same StreamSeq) print the same
// SHA256; where they do not, Tables says which table differs.
type Digest struct {
	Payments      int64  `json:"payments"`
	Postings      int64  `json:"postings"`
	Discrepancies int64  `json:"discrepancies"`
	Captured      int64  `json:"captured"`
	Refunded      int64  `json:"refunded"`
	SHA256        string `json:"sha256"`
	StreamSeq     uint64 `json:"stream_seq"`
	// Tables is each table's rows and hash, in the order hashed.
	Tables []TableDigest `json:"tables"`
}

// TableDigest is one table's part of a Digest.
type TableDigest struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	SHA256 string `json:"sha256"`
}

// digestTable is one table hashed: its rows in a stable order, the columns left out, and joins
// naming a referenced row by its natural key.
type digestTable struct {
	name    string
	omit    []string
	from    string // FROM clause (the table as t, and its joins); default: the table as t
	extra   string // selected beside t's columns (the natural keys of referenced rows)
	orderBy string
}

// DigestTables are the tables a Digest covers: every table a person reads through the commands,
// the desk or the reports.
var digestTables = []digestTable{
	{name: "payments", orderBy: "t.id"},
	{name: "events", orderBy: "t.id"},
	{name: "postings", orderBy: "t.action_id"},
	{name: "journal", orderBy: "t.action_id, t.account"},
	{name: "knet_ids", orderBy: "t.payment_id"},
	{name: "discrepancies", omit: []string{"id"}, orderBy: "t.payment_id, t.kind, t.subject"},
	{name: "discrepancy_history", omit: []string{"id", "discrepancy_id"},
		from:  "discrepancy_history t JOIN discrepancies d ON d.id = t.discrepancy_id",
		extra: "d.payment_id, d.kind, d.subject", orderBy: "d.payment_id, d.kind, d.subject, t.at, t.id"},
	{name: "payment_checks", omit: []string{"id"}, orderBy: "t.payment_id, t.checked_at, t.id"},
	{name: "dead_letters", omit: []string{"id", "deliveries"}, orderBy: "t.stream_seq, t.id"},
	{name: "settlement_runs", omit: []string{"id"}, orderBy: "t.statement_sha256"},
	{name: "settlement_matches", omit: []string{"run_id"},
		from:  "settlement_matches t JOIN settlement_runs r ON r.id = t.run_id",
		extra: "r.statement_sha256", orderBy: "t.action_id"},
	{name: "statement_lines", omit: []string{"run_id"},
		from:  "statement_lines t JOIN settlement_runs r ON r.id = t.run_id",
		extra: "r.statement_sha256", orderBy: "r.statement_sha256, t.line"},
	{name: "deposit_runs", omit: []string{"id"}, orderBy: "t.statement_sha256"},
	{name: "deposit_credits", omit: []string{"run_id"},
		from:  "deposit_credits t JOIN deposit_runs r ON r.id = t.run_id",
		extra: "r.statement_sha256", orderBy: "t.posting_date, t.batch"},
	{name: "operator_actions", omit: []string{"id"}, orderBy: "t.at, t.id"},
	{name: "facts_applied", orderBy: "t.id"},
	{name: "schedule_settings", orderBy: "t.id"},
	{name: "lease_of_record", orderBy: "t.name"},
}

// Digest reads the ledger's Digest in one read transaction.
func (l *Ledger) Digest(ctx context.Context) (Digest, error) {
	var d Digest
	tx, err := l.r.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return d, fmt.Errorf("digest: %w", err)
	}
	defer tx.Rollback()
	all := sha256.New()
	for _, dt := range digestTables {
		td, err := digestOne(ctx, tx, dt)
		if err != nil {
			return d, err
		}
		d.Tables = append(d.Tables, td)
		fmt.Fprintf(all, "%s\x00%d\x00%s\n", td.Name, td.Rows, td.SHA256)
		switch dt.name {
		case "payments":
			d.Payments = td.Rows
		case "postings":
			d.Postings = td.Rows
		case "discrepancies":
			d.Discrepancies = td.Rows
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(captured), 0), COALESCE(SUM(refunded), 0) FROM payments`).Scan(&d.Captured, &d.Refunded); err != nil {
		return d, fmt.Errorf("digest: %w", err)
	}
	var seq sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM stream_position`).Scan(&seq); err != nil {
		return d, fmt.Errorf("digest: %w", err)
	}
	d.StreamSeq = uint64(seq.Int64)
	d.SHA256 = hex.EncodeToString(all.Sum(nil))
	return d, nil
}

// DigestQuery returns the query that lists table's rows as the digest hashes them (tests compare
// two replicas row by row with it).
func (l *Ledger) DigestQuery(ctx context.Context, table string) (string, error) {
	i := slices.IndexFunc(digestTables, func(t digestTable) bool { return t.name == table })
	if i < 0 {
		return "", fmt.Errorf("digest: no table %q", table)
	}
	return digestSelect(ctx, l.r, digestTables[i])
}

// DigestTableNames lists the tables a Digest covers.
func DigestTableNames() []string {
	out := make([]string, len(digestTables))
	for i, t := range digestTables {
		out[i] = t.name
	}
	return out
}

// digestSelect builds the SELECT of one table's digest rows from its columns of the schema.
func digestSelect(ctx context.Context, q sqlx.QueryerContext, dt digestTable) (string, error) {
	rows, err := q.QueryxContext(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, dt.name)
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", dt.name, err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return "", fmt.Errorf("digest %s: %w", dt.name, err)
		}
		if !slices.Contains(dt.omit, c) {
			cols = append(cols, "t."+c)
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("digest %s: %w", dt.name, err)
	}
	if len(cols) == 0 {
		return "", fmt.Errorf("digest %s: no such table", dt.name)
	}
	if dt.extra != "" {
		cols = append(cols, dt.extra)
	}
	from := dt.from
	if from == "" {
		from = dt.name + " t"
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + from + " ORDER BY " + dt.orderBy, nil
}

// digestOne hashes one table's rows.
func digestOne(ctx context.Context, tx *sqlx.Tx, dt digestTable) (TableDigest, error) {
	td := TableDigest{Name: dt.name}
	q, err := digestSelect(ctx, tx, dt)
	if err != nil {
		return td, err
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return td, fmt.Errorf("digest %s: %w", dt.name, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	h := sha256.New()
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return td, fmt.Errorf("digest %s: %w", dt.name, err)
		}
		for _, v := range vals {
			if v == nil {
				h.Write([]byte{1}) // NULL, unlike an empty text
			} else {
				h.Write([]byte{0})
				h.Write(v)
			}
			h.Write([]byte{0})
		}
		h.Write([]byte{'\n'})
		td.Rows++
	}
	if err := rows.Err(); err != nil {
		return td, fmt.Errorf("digest %s: %w", dt.name, err)
	}
	td.SHA256 = hex.EncodeToString(h.Sum(nil))
	return td, nil
}

// Same reports whether d and o are digests of the same ledger contents at the same position.
func (d Digest) Same(o Digest) bool { return d.SHA256 == o.SHA256 && d.StreamSeq == o.StreamSeq }

// Differs names the tables whose rows differ between d and o.
func (d Digest) Differs(o Digest) []string {
	var out []string
	for _, t := range d.Tables {
		i := slices.IndexFunc(o.Tables, func(u TableDigest) bool { return u.Name == t.Name })
		if i < 0 || o.Tables[i] != t {
			out = append(out, t.Name)
		}
	}
	return out
}

// DigestRows lists table's rows as the digest hashes them, each column as text ("NULL" for
// NULL): tests and `reconciler digest` compare two replicas row by row with them.
func (l *Ledger) DigestRows(ctx context.Context, table string) ([][]string, error) {
	q, err := l.DigestQuery(ctx, table)
	if err != nil {
		return nil, err
	}
	rows, err := l.r.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("digest %s: %w", table, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out [][]string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("digest %s: %w", table, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = cols[i] + "=" + string(v)
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}
