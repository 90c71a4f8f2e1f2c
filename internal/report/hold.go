package report

import (
	"fmt"
	"time"
)

// DayEndGrace is how long after a day's end its watermark is read: it covers a publisher's or the
// NATS server's clock running a little behind this process's, so that a message stored (by the
// stream's clock) before the day ended is not read as after it.
const DayEndGrace = time.Minute

// Watermark is the stream's last sequence read at or after a day's end (and DayEndGrace): every
// message the stream stored before the day ended has a sequence at most Seq.
type Watermark struct {
	Seq    uint64
	ReadAt time.Time
}

// Hold says whether the ledger holds a day: whether it has applied every message the stream
// stored before the day's end (in the report's time zone). Postings count on the day the stream
// stored their message, so a report built before then would miss money that later counts on the
// day; a report is written only once the ledger holds its day.
type Hold struct {
	Date string
	// Over is when the day's watermark may be read: the day's end plus DayEndGrace.
	Over time.Time
	// Mark is the day's watermark; its ReadAt is zero while the day is not over.
	Mark Watermark
	// Position is the ledger's stream position: the highest sequence it has applied.
	Position uint64
}

// IsOver reports whether the day is over and its watermark read.
func (h Hold) IsOver() bool { return !h.Mark.ReadAt.IsZero() }

// Held reports whether the ledger holds the day: the day is over and the ledger has applied the
// stream up to the day's watermark.
func (h Hold) Held() bool { return h.IsOver() && h.Position >= h.Mark.Seq }

// String says where the day stands, for the logs, the desk and a command's refusal.
func (h Hold) String() string {
	loc := h.Over.Location()
	switch {
	case !h.IsOver():
		return fmt.Sprintf("%s is not over (in %s until %s)", h.Date, loc, h.Over.Add(-DayEndGrace).Format(time.RFC3339))
	case !h.Held():
		return fmt.Sprintf("waiting for the ledger to apply the stream up to seq %d (its end at %s); applied up to seq %d",
			h.Mark.Seq, h.Mark.ReadAt.In(loc).Format("2006-01-02 15:04:05"), h.Position)
	}
	return fmt.Sprintf("the ledger holds %s: applied up to seq %d, the day needs %d", h.Date, h.Position, h.Mark.Seq)
}

// CheckHold says whether the ledger holds date (YYYY-MM-DD in loc) at now. mark is the day's
// watermark if one was read before (ReadAt zero: none); otherwise, once the day is over, lastSeq
// reads the stream's last sequence now and that is the watermark, kept in the Hold returned for
// the next call. position reads the ledger's stream position. Neither is called while the day is
// not over.
func CheckHold(date string, loc *time.Location, now time.Time, mark Watermark, lastSeq, position func() (uint64, error)) (Hold, error) {
	_, end, err := Day(date, loc)
	if err != nil {
		return Hold{}, err
	}
	h := Hold{Date: date, Over: end.Add(DayEndGrace)}
	if now.Before(h.Over) {
		return h, nil
	}
	if mark.ReadAt.IsZero() {
		seq, err := lastSeq()
		if err != nil {
			return h, fmt.Errorf("report %s: the stream's end: %w", date, err)
		}
		mark = Watermark{Seq: seq, ReadAt: now}
	}
	h.Mark = mark
	if h.Position, err = position(); err != nil {
		return h, fmt.Errorf("report %s: %w", date, err)
	}
	return h, nil
}
