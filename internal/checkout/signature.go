package checkout

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// SignatureHeader is the header that carries the webhook's HMAC-SHA256 signature.
const SignatureHeader = "Cko-Signature"

// Signature verification errors. They say why a body was refused and never carry a key.
var (
	ErrSignatureMissing   = errors.New("signature header missing")
	ErrSignatureMalformed = errors.New("signature header is not a hex SHA-256 digest")
	ErrSignatureMismatch  = errors.New("signature matches no configured key")
	ErrNoKeys             = errors.New("no webhook signature key configured")
)

// Key is one webhook signature key. Name identifies it in logs and headers; Secret never leaves
// this package except through the HMAC it keys.
type Key struct {
	Name   string
	Secret []byte
}

// Fingerprint names the key by its content, the same across restarts and reloads, without
// revealing it: "k-" and the first 8 hex digits of its SHA-256 (printf %s "$KEY" | sha256sum).
func (k Key) Fingerprint() string {
	sum := sha256.Sum256(k.Secret)
	return "k-" + hex.EncodeToString(sum[:4])
}

// String hides the secret so that a Key can never be printed by accident.
func (k Key) String() string { return "Key(" + k.Name + ")" }

// GoString hides the secret from %#v as well.
func (k Key) GoString() string { return k.String() }

// KeyRing holds every webhook key currently valid. During a rotation Checkout.com may sign with
// the old or the new key, so both are configured at once.
type KeyRing struct {
	keys []Key
}

// NewKeyRing returns a ring of the given keys. It refuses an empty ring or an empty secret.
func NewKeyRing(keys ...Key) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	ring := &KeyRing{keys: make([]Key, len(keys))}
	for i, k := range keys {
		if len(k.Secret) == 0 {
			return nil, fmt.Errorf("webhook key %d is empty", i+1)
		}
		if k.Name == "" {
			k.Name = fmt.Sprintf("key%d", i+1)
		}
		k.Secret = append([]byte(nil), k.Secret...)
		ring.keys[i] = k
	}
	return ring, nil
}

// ParseKeys splits a comma- or newline-separated list of secrets into keys named key1, key2, …
// in the order given. Blank entries and surrounding white space are ignored.
func ParseKeys(list string) []Key {
	fields := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })
	var keys []Key
	for _, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		keys = append(keys, Key{Name: fmt.Sprintf("key%d", len(keys)+1), Secret: []byte(f)})
	}
	return keys
}

// Len reports how many keys the ring holds.
func (r *KeyRing) Len() int { return len(r.keys) }

// Verify checks header, the Cko-Signature value, against body with every key of the ring and
// returns the name of the key that matched. Hex digits of either case are accepted. Every key is
// tried, so the time taken does not depend on which key matched.
func (r *KeyRing) Verify(body []byte, header string) (string, error) {
	k, err := r.Match(body, header)
	return k.Name, err
}

// Match is Verify returning the key that matched (its String and fingerprint hide the secret).
func (r *KeyRing) Match(body []byte, header string) (Key, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return Key{}, ErrSignatureMissing
	}
	if len(header) != 2*sha256.Size {
		return Key{}, ErrSignatureMalformed
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(header)); err != nil {
		return Key{}, ErrSignatureMalformed
	}
	matched := -1
	for i, k := range r.keys {
		mac := hmac.New(sha256.New, k.Secret)
		mac.Write(body)
		if hmac.Equal(mac.Sum(nil), got[:]) && matched < 0 {
			matched = i
		}
	}
	if matched < 0 {
		return Key{}, ErrSignatureMismatch
	}
	return r.keys[matched], nil
}

// Fingerprints lists the ring's keys by fingerprint, in order.
func (r *KeyRing) Fingerprints() []string {
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.Fingerprint()
	}
	return out
}

// Sign returns the lowercase hex HMAC-SHA256 of body under secret: the Cko-Signature value
// Checkout.com sends. The simulator and the tests sign with it.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// AuthorizationMatches reports whether got equals the configured Authorization value want, in
// time that depends on neither value's contents nor their lengths.
func AuthorizationMatches(got, want string) bool {
	g := sha256.Sum256([]byte(got))
	w := sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Sign returns body's signature under the ring's first key, and that key's fingerprint. A
// rotation adds the new key after the old one everywhere first (every holder then verifies
// both), then moves it first (it signs from then on), then drops the old one.
func (r *KeyRing) Sign(body []byte) (signature, fingerprint string) {
	k := r.keys[0]
	return Sign(k.Secret, body), k.Fingerprint()
}
