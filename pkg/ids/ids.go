// Package ids validates and generates the identifiers that enter NATS subjects:
// chat, user and message IDs.
//
// Every ID that becomes part of a subject must match ^[A-Za-z0-9_-]{1,64}$, so a
// value containing '.', '*', '>' or white space can never change which subject a
// publish or a subscription addresses.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest ID accepted, in bytes.
const MaxLen = 64

// ErrInvalid is returned (wrapped) by Validate for an ID that must not enter a subject.
var ErrInvalid = errors.New("invalid id")

// Valid reports whether id matches ^[A-Za-z0-9_-]{1,64}$.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Validate returns nil for a valid ID and an error wrapping ErrInvalid naming the
// kind ("chat", "user", "message") otherwise.
func Validate(kind, id string) error {
	if Valid(id) {
		return nil
	}
	if id == "" {
		return fmt.Errorf("%w: %s id is empty", ErrInvalid, kind)
	}
	if len(id) > MaxLen {
		return fmt.Errorf("%w: %s id is %d bytes, the limit is %d", ErrInvalid, kind, len(id), MaxLen)
	}
	return fmt.Errorf("%w: %s id may contain only A-Z a-z 0-9 _ -", ErrInvalid, kind)
}

var enc = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// New returns a random 26-character ID (130 bits of entropy) that is always Valid.
func New() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("ids: crypto/rand failed: %v", err))
	}
	return enc.EncodeToString(b[:])
}

// Direct returns the chat ID of the direct chat between users a and b. It is the same
// for (a, b) and (b, a), so creating a direct chat twice finds the first one.
func Direct(a, b string) string {
	return direct("dm-", a, b, "")
}

// EncryptedDirect is Direct for the end-to-end encrypted direct chat of a and b: a
// different ID ("edm-..."), so the two users may have both a plain and an
// encrypted direct chat.
func EncryptedDirect(a, b string) string {
	return direct("edm-", a, b, "\x00e2ee")
}

func direct(prefix, a, b, salt string) string {
	if a > b {
		a, b = b, a
	}
	sum := sha256.Sum256([]byte(a + "\x00" + b + salt))
	return prefix + strings.ToLower(enc.EncodeToString(sum[:20]))
}
