// Package store is the SQLite ledger finance reads: payments, every event applied exactly once,
// a balanced double-entry journal keyed by Checkout.com action ids, discrepancies, dead letters
// and the sweep's checks. Every write goes through Apply (or Update) in one transaction on the
// single writer connection; readers use their own pool. It returns errors and never logs.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// ErrNotFound is returned by lookups of a payment or dead letter the ledger does not hold.
var ErrNotFound = errors.New("not found")

// ErrTransient wraps failures worth retrying later (the database is busy, the disk is full):
// the caller should retry the whole batch, never skip it.
var ErrTransient = errors.New("transient ledger failure")

// timeFormat is how times are stored: UTC, fixed width, so text order is time order.
const timeFormat = "2006-01-02T15:04:05.000000000Z"

// Ledger is the SQLite ledger.
type Ledger struct {
	path string
	w    *sqlx.DB // the one writer connection
	r    *sqlx.DB // readers
	// Now is the ledger's clock (applied_at, detected_at). Tests set it.
	Now func() time.Time
	// schedule is the schedule of record (see Schedule), as last committed.
	schedule atomic.Pointer[Schedule]

	stmts map[string]*sqlx.Stmt
}

// DSN returns the go-sqlite3 data source name for path with the ledger's pragmas: WAL, a busy
// timeout, foreign keys, and immediate transactions so that a writer never upgrades a read lock.
func DSN(path string, readOnly bool) string {
	return dsn(path, readOnly, DefaultBusyTimeout, "")
}

// DefaultBusyTimeout is how long a statement waits for a lock held by another process.
const DefaultBusyTimeout = 5 * time.Second

// Options tune Open.
type Options struct {
	// BusyTimeout is how long to wait for another process's lock before a transient error;
	// 0 means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// Synchronous overrides the writer's PRAGMA synchronous ("FULL" when empty). Benchmarks set
	// NORMAL to measure what FULL costs in the same run; the reconciler never does.
	Synchronous string
}

func dsn(path string, readOnly bool, busy time.Duration, synchronous string) string {
	if synchronous == "" {
		synchronous = "FULL"
	}
	v := url.Values{}
	v.Set("_busy_timeout", strconv.FormatInt(busy.Milliseconds(), 10))
	v.Set("_foreign_keys", "on")
	if readOnly {
		v.Set("_query_only", "true")
		v.Set("_txlock", "deferred")
	} else {
		v.Set("_journal_mode", "WAL")
		v.Set("_txlock", "immediate")
		// FULL, not go-sqlite3's compiled default NORMAL: in WAL mode NORMAL syncs only at a
		// checkpoint, so a power cut could undo commits whose messages were already acked. FULL
		// syncs the WAL at every commit: one fsync per batch covers all of its messages.
		v.Set("_synchronous", synchronous)
	}
	return "file:" + path + "?" + v.Encode()
}

// Open opens (creating if needed) the ledger at path and brings its schema up to date.
func Open(ctx context.Context, path string) (*Ledger, error) {
	return OpenWith(ctx, path, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, opts Options) (*Ledger, error) {
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file::memory:") {
		return nil, fmt.Errorf("open ledger: a file path is required, got %q", path)
	}
	if err := makePrivate(path); err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	w, err := sqlx.Open("sqlite3", dsn(path, false, opts.BusyTimeout, opts.Synchronous))
	if err != nil {
		return nil, fmt.Errorf("open ledger %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	l := &Ledger{path: path, w: w, Now: time.Now}
	if err := l.Migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := l.loadSchedule(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sqlx.Open("sqlite3", dsn(path, true, opts.BusyTimeout, ""))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open ledger %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	l.r = r
	if err := l.prepare(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Path returns the ledger's file.
func (l *Ledger) Path() string { return l.path }

// Close closes the connections, keeping the first error.
func (l *Ledger) Close() error {
	var errs []error
	for _, s := range l.stmts {
		errs = append(errs, s.Close())
	}
	if l.r != nil {
		errs = append(errs, l.r.Close())
	}
	errs = append(errs, l.w.Close())
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("close ledger: %w", err)
		}
	}
	return nil
}

// Synchronous returns the writer connection's PRAGMA synchronous (2: FULL, every commit synced).
func (l *Ledger) Synchronous(ctx context.Context) (int, error) {
	var v int
	if err := l.w.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&v); err != nil {
		return 0, fmt.Errorf("pragma synchronous: %w", err)
	}
	return v, nil
}

// Ping checks that the ledger answers a read and holds no pending migration.
func (l *Ledger) Ping(ctx context.Context) error {
	var v int
	if err := l.r.GetContext(ctx, &v, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`); err != nil {
		return fmt.Errorf("ping ledger: %w", err)
	}
	return nil
}

// migration is one embedded schema change.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and _", e.Name())
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies the embedded migrations not yet recorded, each in its own transaction, and
// records each one. Running it again changes nothing.
func (l *Ledger) Migrate(ctx context.Context) error {
	if _, err := l.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		if err := l.migrate(ctx, m); err != nil {
			return fmt.Errorf("migrate %s: %w", m.name, err)
		}
	}
	return nil
}

func (l *Ledger) migrate(ctx context.Context, m migration) error {
	tx, err := l.w.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, fmtTime(l.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the highest migration applied.
func (l *Ledger) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := l.r.GetContext(ctx, &v, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`)
	return v, err
}

// Tx is one write transaction on the ledger. Get one through Update.
type Tx struct {
	tx    *sqlx.Tx
	l     *Ledger
	now   time.Time
	stmts map[string]*sqlx.Stmt
	// optimistic runs savepoint bodies without a savepoint; see Update.
	optimistic bool
	// cache is what Prefetch read (optimistic runs only).
	cache *txCache
	// pending are the rows written at the end of the batch (with cache only; see rows.go).
	pending pendingRows
	// schedule is the ledger's schedule as this transaction applies it; scheduleSet: a
	// settings fact changed it, for the ledger to take on at commit.
	schedule    Schedule
	scheduleSet bool
}

// errNeedSavepoint ends an optimistic run of Update: a savepoint's body failed, so the run is
// rolled back and done again with real savepoints. It never leaves Update.
var errNeedSavepoint = fmt.Errorf("%w: a savepoint's work failed; running the transaction again with savepoints", ErrTransient)

// Update runs fn in one immediate transaction on the writer connection and commits if fn returns
// nil; otherwise it rolls back and returns fn's error. Failures worth retrying wrap ErrTransient.
//
// Savepoints are optimistic: a real one costs more than the event it guards (a copy of every page
// the event touches), and nearly every event succeeds. So fn first runs with Savepoint calling its
// body directly; if a body fails, that run is rolled back whole and fn runs again, this time with
// real savepoints. fn must therefore keep its effects inside the transaction, or be safe to repeat.
func (l *Ledger) Update(ctx context.Context, fn func(*Tx) error) error {
	err := l.update(ctx, fn, true)
	if errors.Is(err, errNeedSavepoint) {
		err = l.update(ctx, fn, false)
	}
	return err
}

func (l *Ledger) update(ctx context.Context, fn func(*Tx) error, optimistic bool) error {
	tx, err := l.w.BeginTxx(ctx, nil)
	if err != nil {
		return classify(fmt.Errorf("begin: %w", err))
	}
	// Whatever happens below, an error, a panic in fn or a failed commit, the transaction ends:
	// a transaction left open would keep the one writer connection, and every later write would
	// wait for it for ever. Rollback after a successful Commit is a no-op (sql.ErrTxDone).
	defer func() { _ = tx.Rollback() }()
	t := &Tx{tx: tx, l: l, now: l.Now().UTC(), stmts: make(map[string]*sqlx.Stmt, len(l.stmts)), optimistic: optimistic}
	// Read inside the write transaction: another process (a one-shot command catching up) may
	// have applied a settings fact to this file since this process last looked.
	if t.schedule, err = readSchedule(ctx, tx); err != nil {
		return classify(err)
	}
	if err := fn(t); err != nil {
		return classify(err)
	}
	if err := t.flushRows(ctx); err != nil {
		if err = classify(err); optimistic && !IsTransient(err) {
			return errNeedSavepoint
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return classify(fmt.Errorf("commit: %w", err))
	}
	if t.scheduleSet {
		s := t.schedule
		l.schedule.Store(&s)
	}
	return nil
}

// Savepoint runs fn inside a savepoint of tx: if fn fails, only its writes are rolled back and
// the transaction goes on. This is how one bad event in a batch leaves its neighbours applied.
//
// In Update's optimistic run there is no savepoint: fn runs directly, and if it fails the whole
// run is rolled back and repeated with real savepoints (see Update).
func (t *Tx) Savepoint(ctx context.Context, fn func() error) error {
	if t.optimistic {
		if err := fn(); err != nil {
			if IsTransient(err) {
				return err
			}
			return errNeedSavepoint
		}
		return nil
	}
	if _, err := t.stmt("savepoint").ExecContext(ctx); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if err := fn(); err != nil {
		if _, rerr := t.stmt("rollbackTo").ExecContext(ctx); rerr != nil {
			return errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rerr))
		}
		if _, rerr := t.stmt("release").ExecContext(ctx); rerr != nil {
			return errors.Join(err, fmt.Errorf("release savepoint: %w", rerr))
		}
		return err
	}
	if _, err := t.stmt("release").ExecContext(ctx); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// Now returns the transaction's clock reading, the same for every row it writes.
func (t *Tx) Now() time.Time { return t.now }

// SetNow makes at the transaction's clock reading for the rows written next (zero: unchanged).
// The consumer sets each message's time in the stream, so that every replica of the ledger stamps
// the same times (applied_at, posted_at, detected_at) whenever it applies the message.
func (t *Tx) SetNow(at time.Time) {
	if !at.IsZero() {
		t.now = at
	}
}

// stmt returns the prepared statement key bound to this transaction.
func (t *Tx) stmt(key string) *sqlx.Stmt {
	if s, ok := t.stmts[key]; ok {
		return s
	}
	s := t.tx.Stmtx(t.l.stmts[key])
	t.stmts[key] = s
	return s
}

// IsTransient reports whether err is worth retrying later: the database was busy or locked, the
// disk is full, an I/O error, or the context ran out.
func IsTransient(err error) bool {
	if errors.Is(err, ErrTransient) {
		return true
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrFull, sqlite3.ErrIoErr,
			sqlite3.ErrCantOpen, sqlite3.ErrNoLFS, sqlite3.ErrProtocol:
			return true
		}
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, sql.ErrTxDone)
}

// classify wraps err with ErrTransient when it is worth retrying.
func classify(err error) error {
	if err != nil && !errors.Is(err, ErrTransient) && IsTransient(err) {
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	return err
}

// fmtTime writes t in timeFormat. It is on Apply's path several times per event, so the common
// case (years 0–9999) is written by hand: a tenth of time.Format's cost, same bytes.
func fmtTime(t time.Time) string {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Format(timeFormat)
	}
	hour, minute, sec := t.Clock()
	var b [30]byte
	put := func(i, v, width int) {
		for j := i + width - 1; j >= i; j-- {
			b[j] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	b[4] = '-'
	put(5, int(month), 2)
	b[7] = '-'
	put(8, day, 2)
	b[10] = 'T'
	put(11, hour, 2)
	b[13] = ':'
	put(14, minute, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = '.'
	put(20, t.Nanosecond(), 9)
	b[29] = 'Z'
	return string(b[:])
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return fmtTime(t)
}

func parseTime(s sql.NullString) time.Time {
	if !s.Valid || s.String == "" {
		return time.Time{}
	}
	t, _ := time.Parse(timeFormat, s.String)
	return t
}
