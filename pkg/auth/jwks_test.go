package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// provider is an httptest identity provider whose key set the test edits. Beside
// the keys the test sets it publishes an RSA key for encryption ("use": "enc"), kid
// "enc", which must never verify a token.
type provider struct {
	mu   sync.Mutex
	keys map[string]any // kid -> private key
	down bool
	srv  *httptest.Server
	enc  *rsa.PrivateKey
}

func newProvider(t *testing.T) *provider {
	enc, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p := &provider{keys: map[string]any{}, enc: enc}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		b64 := base64.RawURLEncoding.EncodeToString
		rsaKey := func(kid, use string, k *rsa.PrivateKey) map[string]string {
			return map[string]string{"kid": kid, "kty": "RSA", "use": use, "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
		}
		for kid, k := range p.keys {
			switch k := k.(type) {
			case *rsa.PrivateKey:
				set.Keys = append(set.Keys, rsaKey(kid, "sig", k))
			case ed25519.PrivateKey:
				set.Keys = append(set.Keys, map[string]string{"kid": kid, "kty": "OKP", "crv": "Ed25519",
					"x": b64(k.Public().(ed25519.PublicKey))})
			}
		}
		set.Keys = append(set.Keys, rsaKey("enc", "enc", p.enc))
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) set(kid string, k any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k == nil {
		delete(p.keys, kid)
	} else {
		p.keys[kid] = k
	}
}

func sign(t *testing.T, kid string, k any, user string) string {
	t.Helper()
	var m jwt.SigningMethod = jwt.SigningMethodRS256
	if _, ok := k.(ed25519.PrivateKey); ok {
		m = jwt.SigningMethodEdDSA
	}
	tok := jwt.NewWithClaims(m, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: user,
		IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(k)
	require.NoError(t, err)
	return s
}

// jwksVerifier returns a verifier on p, closed when the test ends, whose outage
// clock the test moves.
func jwksVerifier(t *testing.T, p *provider, ttl, minRefresh time.Duration) (*Verifier, *atomic.Int64) {
	v, err := NewVerifier(Config{JWKSURL: p.srv.URL, JWKSTTL: ttl, JWKSMinRefresh: minRefresh, Leeway: time.Second}, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(v.Close)
	var skew atomic.Int64
	v.jwks.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	return v, &skew
}

func verify(v *Verifier, tok string) (Identity, error) { return v.Verify(context.Background(), tok) }

func TestJWKSKeysByKidAndRotation(t *testing.T) {
	rsa1, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, ed2, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := newProvider(t)
	p.set("rsa1", rsa1)
	p.set("ed1", ed1)
	v, _ := jwksVerifier(t, p, time.Hour, 0)

	for kid, k := range map[string]any{"rsa1": rsa1, "ed1": ed1} {
		id, err := verify(v, sign(t, kid, k, "alice"))
		require.NoError(t, err, kid)
		require.Equal(t, "alice", id.UserID)
	}
	require.EqualValues(t, 1, v.jwks.fetches.Load(), "one fetch (at start) serves both")

	// Rotation: a new key is accepted as soon as a token names it.
	p.set("ed2", ed2)
	_, err = verify(v, sign(t, "ed2", ed2, "bob"))
	require.NoError(t, err, "an unknown kid refetches the set")
	require.EqualValues(t, 2, v.jwks.fetches.Load())

	// Removal: still cached until the set is fetched again.
	p.set("ed1", nil)
	_, err = verify(v, sign(t, "ed1", ed1, "alice"))
	require.NoError(t, err, "still cached")
}

// TestJWKSRemovedKeyRefusedAfterRefetch checks the periodic refetch (every
// auth.jwks-ttl) drops a key the provider retired.
func TestJWKSRemovedKeyRefusedAfterRefetch(t *testing.T) {
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, ed2, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := newProvider(t)
	p.set("ed1", ed1)
	p.set("ed2", ed2)
	v, _ := jwksVerifier(t, p, 50*time.Millisecond, time.Hour)
	_, err = verify(v, sign(t, "ed1", ed1, "alice"))
	require.NoError(t, err)
	p.set("ed1", nil)
	require.Eventually(t, func() bool {
		_, err := verify(v, sign(t, "ed1", ed1, "alice"))
		return errors.Is(err, ErrBadToken)
	}, 10*time.Second, 10*time.Millisecond, "refused after the TTL refetch")
	_, err = verify(v, sign(t, "ed2", ed2, "bob"))
	require.NoError(t, err)
}

func TestJWKSRefusals(t *testing.T) {
	rsa1, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := newProvider(t)
	p.set("rsa1", rsa1)
	p.set("ed1", ed1)
	p.set("small", small)
	v, _ := jwksVerifier(t, p, time.Hour, time.Hour)

	_, err = verify(v, sign(t, "rsa1", rsa1, "alice"))
	require.NoError(t, err, "the set was fetched")
	hs, err := Sign([]byte("0123456789abcdef0123456789abcdef"), "alice", time.Hour, false)
	require.NoError(t, err)
	for name, tok := range map[string]string{
		"no kid":                          sign(t, "", ed1, "alice"),
		"signed by a stranger":            sign(t, "ed1", stranger, "alice"),
		"algorithm does not fit the key":  sign(t, "rsa1", ed1, "alice"), // EdDSA token naming an RSA key
		"HS256 with no secret configured": hs,
		"encryption key":                  sign(t, "enc", p.enc, "alice"),
		"RSA key under 2048 bits":         sign(t, "small", small, "alice"),
	} {
		_, err := verify(v, tok)
		require.ErrorIs(t, err, ErrBadToken, name)
	}

	// Unknown kids refetch at most once per auth.jwks-min-refresh; the others are
	// refused at once rather than waiting for the next refetch.
	before := v.jwks.fetches.Load()
	start := time.Now()
	for i := range 20 {
		_, err := verify(v, sign(t, "made-up-"+string(rune('a'+i)), stranger, "mallory"))
		require.ErrorIs(t, err, ErrBadToken)
	}
	require.LessOrEqual(t, v.jwks.fetches.Load()-before, int64(1), "a flood of unknown kids cannot hammer the provider")
	require.Less(t, time.Since(start), jwksTimeout, "no token waited for the refetch limiter")
}

// TestJWKSVerifyEndsWithContext checks a refetch caused by an unknown kid ends with
// the verifying call's context.
func TestJWKSVerifyEndsWithContext(t *testing.T) {
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := newProvider(t)
	p.set("ed1", ed1)
	v, _ := jwksVerifier(t, p, time.Hour, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, ed2, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p.set("ed2", ed2)
	_, err = v.Verify(ctx, sign(t, "ed2", ed2, "bob"))
	require.ErrorIs(t, err, ErrBadToken, "no refetch on an ended context")
	_, err = verify(v, sign(t, "ed2", ed2, "bob"))
	require.NoError(t, err)
}

func TestJWKSProviderOutage(t *testing.T) {
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := newProvider(t)
	p.set("ed1", ed1)
	v, skew := jwksVerifier(t, p, time.Minute, 0)
	tok := sign(t, "ed1", ed1, "alice")
	_, err = verify(v, tok)
	require.NoError(t, err)

	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	// An unknown kid makes the verifier try the provider now, as the periodic
	// refetch would.
	failedFetch := func() {
		before := v.jwks.fetches.Load()
		_, err := verify(v, sign(t, "other", ed1, "alice"))
		require.ErrorIs(t, err, ErrBadToken)
		require.Greater(t, v.jwks.fetches.Load(), before)
	}
	skew.Store(int64(90 * time.Second))
	failedFetch()
	_, err = verify(v, tok)
	require.NoError(t, err, "a short outage keeps the cached keys")
	skew.Store(int64(150 * time.Second))
	failedFetch()
	_, err = verify(v, tok)
	require.ErrorIs(t, err, ErrBadToken, "a long one (2x TTL) stops trusting them")
}
