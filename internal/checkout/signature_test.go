package checkout

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestSignatureVector(t *testing.T) {
	raw, err := os.ReadFile("testdata/samples/signature_vector_1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Body, Key, Signature string }
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if got := Sign([]byte(v.Key), []byte(v.Body)); got != v.Signature {
		t.Fatalf("Sign = %s, want %s", got, v.Signature)
	}
	ring, err := NewKeyRing(Key{Name: "primary", Secret: []byte(v.Key)})
	if err != nil {
		t.Fatal(err)
	}
	for _, header := range []string{v.Signature, strings.ToUpper(v.Signature), " " + v.Signature + " "} {
		name, err := ring.Verify([]byte(v.Body), header)
		if err != nil || name != "primary" {
			t.Errorf("Verify(%q) = %q, %v; want primary", header, name, err)
		}
	}
}

func TestKeyRingVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"payment_captured","data":{"id":"pay_1"}}`)
	ring, err := NewKeyRing(ParseKeys("old-secret, new-secret\n")...)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		give    string
		want    string
		wantErr error
	}{
		{"old key", Sign([]byte("old-secret"), body), "key1", nil},
		{"new key", Sign([]byte("new-secret"), body), "key2", nil},
		{"wrong key", Sign([]byte("other"), body), "", ErrSignatureMismatch},
		{"tampered body", Sign([]byte("old-secret"), append(body, ' ')), "", ErrSignatureMismatch},
		{"missing", "", "", ErrSignatureMissing},
		{"not hex", strings.Repeat("zz", 32), "", ErrSignatureMalformed},
		{"short", "abcd", "", ErrSignatureMalformed},
		{"sha1 length", strings.Repeat("ab", 20), "", ErrSignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ring.Verify(body, tt.give)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Verify = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestKeyRingRefusesEmpty(t *testing.T) {
	if _, err := NewKeyRing(); !errors.Is(err, ErrNoKeys) {
		t.Fatalf("NewKeyRing() err = %v, want ErrNoKeys", err)
	}
	if _, err := NewKeyRing(Key{Name: "a"}); err == nil {
		t.Fatal("NewKeyRing accepted an empty secret")
	}
	if keys := ParseKeys(" , \n"); len(keys) != 0 {
		t.Fatalf("ParseKeys of blanks = %v", keys)
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k := Key{Name: "key1", Secret: []byte("sk_super_secret")}
	for _, s := range []string{k.String(), k.GoString()} {
		if strings.Contains(s, "super_secret") {
			t.Fatalf("key printed its secret: %s", s)
		}
	}
}

func TestAuthorizationMatches(t *testing.T) {
	if !AuthorizationMatches("abc", "abc") {
		t.Fatal("equal values did not match")
	}
	for _, give := range []string{"", "ab", "abcd", "ABC"} {
		if AuthorizationMatches(give, "abc") {
			t.Fatalf("%q matched abc", give)
		}
	}
}
