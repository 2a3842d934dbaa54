package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// provider is an httptest identity provider whose key set the test edits.
type provider struct {
	mu   sync.Mutex
	keys map[string]any // kid -> private key
	down bool
	srv  *httptest.Server
}

func newProvider(t *testing.T) *provider {
	p := &provider{keys: map[string]any{}}
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
		for kid, k := range p.keys {
			switch k := k.(type) {
			case *rsa.PrivateKey:
				set.Keys = append(set.Keys, map[string]string{"kid": kid, "kty": "RSA", "use": "sig", "alg": "RS256",
					"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
			case ed25519.PrivateKey:
				set.Keys = append(set.Keys, map[string]string{"kid": kid, "kty": "OKP", "crv": "Ed25519",
					"x": b64(k.Public().(ed25519.PublicKey))})
			}
		}
		set.Keys = append(set.Keys, map[string]string{"kid": "enc", "kty": "RSA", "use": "enc"}) // skipped
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

// jwksVerifier returns a verifier on p whose JWKS clock the test moves.
func jwksVerifier(t *testing.T, p *provider, minRefresh time.Duration) (*Verifier, *time.Time) {
	v, err := NewVerifier(Config{JWKSURL: p.srv.URL, JWKSTTL: time.Minute, JWKSMinRefresh: minRefresh, Leeway: time.Second}, t.TempDir())
	require.NoError(t, err)
	now := time.Now()
	v.jwks.now = func() time.Time { return now }
	return v, &now
}

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
	v, now := jwksVerifier(t, p, 0)

	for kid, k := range map[string]any{"rsa1": rsa1, "ed1": ed1} {
		id, err := v.Verify(sign(t, kid, k, "alice"))
		require.NoError(t, err, kid)
		require.Equal(t, "alice", id.UserID)
	}
	require.Equal(t, 1, v.jwks.fetches, "one fetch serves both")

	// Rotation: a new key is accepted as soon as a token names it.
	p.set("ed2", ed2)
	_, err = v.Verify(sign(t, "ed2", ed2, "bob"))
	require.NoError(t, err, "an unknown kid refetches the set")
	require.Equal(t, 2, v.jwks.fetches)

	// Removal: once the cached set expires, the retired key is refused.
	p.set("ed1", nil)
	_, err = v.Verify(sign(t, "ed1", ed1, "alice"))
	require.NoError(t, err, "still cached")
	*now = now.Add(time.Minute)
	_, err = v.Verify(sign(t, "ed1", ed1, "alice"))
	require.ErrorIs(t, err, ErrBadToken, "refused after the TTL refetch")
	_, err = v.Verify(sign(t, "ed2", ed2, "bob"))
	require.NoError(t, err)
}

func TestJWKSRefusals(t *testing.T) {
	rsa1, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := newProvider(t)
	p.set("rsa1", rsa1)
	p.set("ed1", ed1)
	v, _ := jwksVerifier(t, p, time.Hour)

	hs, err := Sign([]byte("0123456789abcdef0123456789abcdef"), "alice", time.Hour, false)
	require.NoError(t, err)
	wrongAlg := sign(t, "rsa1", ed1, "alice") // EdDSA token naming an RSA key
	for name, tok := range map[string]string{
		"no kid":                          sign(t, "", ed1, "alice"),
		"signed by a stranger":            sign(t, "ed1", stranger, "alice"),
		"algorithm does not fit the key":  wrongAlg,
		"HS256 with no secret configured": hs,
		"encryption key":                  sign(t, "enc", ed1, "alice"),
	} {
		_, err := v.Verify(tok)
		require.ErrorIs(t, err, ErrBadToken, name)
	}

	// Unknown kids refetch at most once per auth.jwks-min-refresh.
	before := v.jwks.fetches
	for i := range 20 {
		_, err := v.Verify(sign(t, "made-up-"+string(rune('a'+i)), stranger, "mallory"))
		require.ErrorIs(t, err, ErrBadToken)
	}
	require.LessOrEqual(t, v.jwks.fetches-before, 1, "a flood of unknown kids cannot hammer the provider")
}

func TestJWKSProviderOutage(t *testing.T) {
	_, ed1, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	p := newProvider(t)
	p.set("ed1", ed1)
	v, now := jwksVerifier(t, p, 0)
	tok := sign(t, "ed1", ed1, "alice")
	_, err = v.Verify(tok)
	require.NoError(t, err)

	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	*now = now.Add(90 * time.Second)
	_, err = v.Verify(tok)
	require.NoError(t, err, "a short outage keeps the cached keys")
	*now = now.Add(time.Minute)
	_, err = v.Verify(tok)
	require.ErrorIs(t, err, ErrBadToken, "a long one stops trusting them")
}
