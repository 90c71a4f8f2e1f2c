package checkout

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Head is the part of an envelope the receiver routes by: the event id (the de-duplication key)
// and the event type (the subject).
type Head struct {
	ID   string
	Type string
}

// DecodeHead checks body in one pass and returns its id and type. It is the receiver's fast path:
// it validates the whole body as JSON and applies DecodeEvent's envelope rules (object, id with
// evt_, type, readable created_on/timestamp, data an object, data.id on payment events), but does
// not type-check the other fields of data; the reconciler's DecodeEvent does, and sets aside what
// it refuses. Every body DecodeEvent accepts, DecodeHead accepts with the same id and type (the
// fuzz test holds them to it).
func DecodeHead(body []byte) (Head, error) {
	s := scanner{b: body}
	s.space()
	if s.i >= len(s.b) {
		return Head{}, invalid("empty body")
	}
	if s.b[s.i] != '{' {
		if !json.Valid(body) {
			return Head{}, invalid("not JSON")
		}
		return Head{}, invalid("not a JSON object")
	}
	var (
		h                  Head
		created, timestamp string
		dataID             string
		bad                error
	)
	setString := func(dst *string, field string, v value) {
		switch v.kind {
		case kindString:
			*dst = v.str
		case kindNull:
			*dst = ""
		default:
			if bad == nil {
				bad = invalid("field %q has the wrong JSON type", field)
			}
		}
	}
	ok := s.object(func(key []byte) bool {
		switch {
		case bytes.EqualFold(key, []byte("id")):
			v, ok := s.value(true)
			setString(&h.ID, "id", v)
			return ok
		case bytes.EqualFold(key, []byte("type")):
			v, ok := s.value(true)
			setString(&h.Type, "type", v)
			return ok
		case bytes.EqualFold(key, []byte("created_on")):
			v, ok := s.value(true)
			setString(&created, "created_on", v)
			return ok
		case bytes.EqualFold(key, []byte("timestamp")):
			v, ok := s.value(true)
			setString(&timestamp, "timestamp", v)
			return ok
		case bytes.EqualFold(key, []byte("version")):
			var version string
			v, ok := s.value(false)
			setString(&version, "version", v)
			return ok
		case bytes.EqualFold(key, []byte("data")):
			s.space()
			if s.i < len(s.b) && s.b[s.i] == '{' {
				dataID = ""
				return s.object(func(key []byte) bool {
					if bytes.EqualFold(key, []byte("id")) {
						v, ok := s.value(true)
						setString(&dataID, "data.id", v)
						return ok
					}
					_, ok := s.value(false)
					return ok
				})
			}
			v, ok := s.value(false)
			if ok && v.kind != kindNull && bad == nil {
				bad = invalid("data is not a JSON object")
			}
			if v.kind == kindNull {
				dataID = ""
			}
			return ok
		default:
			_, ok := s.value(false)
			return ok
		}
	})
	if ok {
		s.space()
		ok = s.i == len(s.b)
	}
	if !ok {
		return Head{}, invalid("not JSON: syntax error near byte %d", s.i)
	}
	if bad != nil {
		return Head{}, bad
	}
	if h.ID == "" {
		return Head{}, invalid("missing id")
	}
	if !strings.HasPrefix(h.ID, "evt_") {
		return Head{}, invalid("id %q does not start with evt_", truncate(h.ID, 64))
	}
	if h.Type == "" {
		return Head{}, invalid("missing type")
	}
	if err := checkBounds(h.ID, h.Type, dataID); err != nil {
		return Head{}, err
	}
	if created == "" {
		created = timestamp
	}
	if created != "" {
		if _, err := ParseTime(created); err != nil {
			return Head{}, invalid("created time %q is not RFC 3339", truncate(created, 64))
		}
	}
	if strings.HasPrefix(h.Type, "payment_") && dataID == "" {
		return Head{}, invalid("payment event without data.id")
	}
	return h, nil
}

type kind int

const (
	kindOther kind = iota
	kindString
	kindNull
)

type value struct {
	kind kind
	str  string
}

// scanner is a minimal validating JSON reader: enough to walk an envelope once, decoding only
// the strings asked for.
type scanner struct {
	b     []byte
	i     int
	depth int
}

const maxDepth = 10000

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads an object, calling member for each key with the scanner at the key's value;
// member must consume the value.
func (s *scanner) object(member func(key []byte) bool) bool {
	s.depth++
	defer func() { s.depth-- }()
	if s.depth > maxDepth {
		return false
	}
	s.i++ // '{'
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		key, ok := s.str(true)
		if !ok {
			return false
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		if !member(key) {
			return false
		}
		s.space()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// value reads any value; a string is decoded when decode is set, everything else only validated.
func (s *scanner) value(decode bool) (value, bool) {
	s.space()
	if s.i >= len(s.b) {
		return value{}, false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		str, ok := s.str(decode)
		return value{kind: kindString, str: string(str)}, ok
	case c == '{':
		return value{}, s.object(func([]byte) bool { _, ok := s.value(false); return ok })
	case c == '[':
		return value{}, s.array()
	case c == 't':
		return value{}, s.literal("true")
	case c == 'f':
		return value{}, s.literal("false")
	case c == 'n':
		return value{kind: kindNull}, s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return value{}, s.number()
	default:
		return value{}, false
	}
}

func (s *scanner) array() bool {
	s.depth++
	defer func() { s.depth-- }()
	if s.depth > maxDepth {
		return false
	}
	s.i++ // '['
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return true
	}
	for {
		if _, ok := s.value(false); !ok {
			return false
		}
		s.space()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *scanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

func (s *scanner) number() bool {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return s.i > start
}

// stopInString marks the bytes that end a run of plain string content: the closing quote, a
// backslash, and the control characters JSON forbids inside strings.
var stopInString = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// str reads a string token and, when decode is set, returns its decoded value. The common case,
// no escapes, costs one scan and no allocation: the result aliases the input.
func (s *scanner) str(decode bool) ([]byte, bool) {
	start := s.i
	s.i++ // opening quote
	escaped := false
	for {
		j := s.i
		for j < len(s.b) && !stopInString[s.b[j]] {
			j++
		}
		if j >= len(s.b) || s.b[j] < 0x20 {
			return nil, false
		}
		s.i = j
		if s.b[s.i] == '"' {
			s.i++
			break
		}
		// backslash: validate the escape
		escaped = true
		if s.i+1 >= len(s.b) {
			return nil, false
		}
		switch s.b[s.i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.i += 2
		case 'u':
			if s.i+6 > len(s.b) {
				return nil, false
			}
			for _, c := range s.b[s.i+2 : s.i+6] {
				if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
					return nil, false
				}
			}
			s.i += 6
		default:
			return nil, false
		}
	}
	if !decode {
		return nil, true
	}
	if raw := s.b[start+1 : s.i-1]; !escaped && utf8.Valid(raw) {
		return raw, true
	}
	// Escapes or invalid UTF-8 (which encoding/json replaces with U+FFFD): decode as it does.
	var out string
	if err := json.Unmarshal(s.b[start:s.i], &out); err != nil {
		return nil, false
	}
	return []byte(out), true
}
