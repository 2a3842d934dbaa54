package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/ids"
)

// fuzzSecret signs the seeds in testdata/fuzz/FuzzVerify (tokens that expire in
// 2100, so the valid seeds stay valid).
const fuzzSecret = "fuzz-secret-0123456789abcdef0123"

// FuzzVerify is the token path on hostile input (every token, from the
// Authorization header, the ?token= query or a connect frame, goes through
// Verify). It never panics; a token over MaxTokenBytes is refused as too large
// whatever it holds; and a token it accepts really is an HS256 token signed with
// the configured secret, unexpired, for a valid user ID: checked here by
// recomputing the HMAC by hand, not with the JWT library under test. Seeds:
// testdata/fuzz/FuzzVerify (valid tokens, alg none, HS/RS confusion, a forged
// signature, hostile subjects, oversize).
func FuzzVerify(f *testing.F) {
	v, err := NewVerifier(Config{Secret: fuzzSecret, Leeway: time.Second}, "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if len(token) > MaxTokenBytes {
			if !errors.Is(err, ErrTokenTooLarge) || !errors.Is(err, ErrBadToken) {
				t.Fatalf("a %d-byte token: want ErrTokenTooLarge, got %v", len(token), err)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrBadToken) && !errors.Is(err, ErrExpired) && !errors.Is(err, ErrNoToken) {
				t.Fatalf("Verify(%q): unexpected error kind %v", token, err)
			}
			if id != (Identity{}) {
				t.Fatalf("Verify(%q) returned %+v with an error", token, id)
			}
			return
		}
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d parts: %q", len(parts), token)
		}
		mac := hmac.New(sha256.New, []byte(fuzzSecret))
		mac.Write([]byte(parts[0] + "." + parts[1]))
		sig, derr := base64.RawURLEncoding.DecodeString(parts[2])
		if derr != nil || !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatalf("accepted a token whose signature is not the secret's: %q", token)
		}
		hdr, derr := base64.RawURLEncoding.DecodeString(parts[0])
		var h struct {
			Alg string `json:"alg"`
		}
		if derr != nil || json.Unmarshal(hdr, &h) != nil || h.Alg != "HS256" {
			t.Fatalf("accepted a token whose header is not HS256: %q", hdr)
		}
		if ids.Validate("user", id.UserID) != nil {
			t.Fatalf("accepted a token for user %q", id.UserID)
		}
		if id.ExpiresAt.IsZero() || time.Until(id.ExpiresAt) < -time.Second {
			t.Fatalf("accepted a token without a future expiry: %v", id.ExpiresAt)
		}
	})
}

// TestFuzzVerifySeedsReachEveryBranch keeps the corpus honest: the valid seeds are
// accepted (so FuzzVerify's checks of an accepted token run), and a validly signed
// token over the size limit is refused for its size alone.
func TestFuzzVerifySeedsReachEveryBranch(t *testing.T) {
	v, err := NewVerifier(Config{Secret: fuzzSecret, Leeway: time.Second}, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]error{"valid": nil, "valid_service": nil, "oversize_valid": ErrTokenTooLarge,
		"alg_none": ErrBadToken, "rs256_header_hmac_sig": ErrBadToken, "wrong_key": ErrBadToken, "expired": ErrExpired, "sub_subject_chars": ErrBadToken} {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzVerify", name))
		if err != nil {
			t.Fatal(err)
		}
		var tok string
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[1], "string(%q)", &tok); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = v.Verify(context.Background(), tok)
		if (want == nil && err != nil) || (want != nil && !errors.Is(err, want)) {
			t.Errorf("seed %s: want %v, got %v", name, want, err)
		}
	}
}
