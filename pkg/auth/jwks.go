package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwks is a JSON Web Key Set fetched from auth.jwks-url: the identity provider's
// current signing keys by kid (RS256 and EdDSA). The set is cached for ttl; a token
// with a kid not in the cache refetches it (key rotation), but at most once per
// minRefresh, so a flood of tokens with made-up kids cannot hammer the provider.
// It has no goroutine: fetches happen inside Verify, one at a time.
type jwks struct {
	url        string
	client     *http.Client
	ttl        time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu      sync.Mutex
	keys    map[string]jwk
	fetched time.Time // when keys were last fetched successfully
	tried   time.Time // when a fetch was last attempted
	fetches int       // attempts, for tests
}

// jwk is one usable key.
type jwk struct {
	key crypto.PublicKey
	alg string // the JWK's alg, "" if it has none
}

func newJWKS(url string, ttl, minRefresh time.Duration) *jwks {
	return &jwks{url: url, client: &http.Client{Timeout: 5 * time.Second}, ttl: ttl, minRefresh: minRefresh, now: time.Now}
}

// key returns the key for kid, refetching the set when it is older than ttl, or
// when kid is unknown and no fetch was tried within minRefresh.
func (s *jwks) key(kid string) (jwk, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	stale := s.keys == nil || now.Sub(s.fetched) >= s.ttl
	_, known := s.keys[kid]
	if (stale || !known) && (s.tried.IsZero() || now.Sub(s.tried) >= s.minRefresh) {
		s.tried = now
		s.fetches++
		if keys, err := s.fetch(); err == nil {
			s.keys, s.fetched = keys, now
		} else if stale && now.Sub(s.fetched) >= 2*s.ttl {
			// The provider has been unreachable for a long time: stop trusting keys
			// it may have revoked meanwhile.
			s.keys = nil
			return jwk{}, err
		}
	}
	k, ok := s.keys[kid]
	if !ok {
		return jwk{}, fmt.Errorf("unknown key id %q", kid)
	}
	return k, nil
}

// fetch reads and parses the key set. Keys of other types, or not for signatures,
// are skipped.
func (s *jwks) fetch() (map[string]jwk, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("auth: jwks request: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth: fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth: fetch jwks: HTTP %d", resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			Kty string `json:"kty"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			Crv string `json:"crv"`
			N   string `json:"n"`
			E   string `json:"e"`
			X   string `json:"x"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("auth: parse jwks: %w", err)
	}
	keys := map[string]jwk{}
	for _, k := range set.Keys {
		if k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		switch {
		case k.Kty == "RSA" && (k.Alg == "" || k.Alg == jwt.SigningMethodRS256.Alg()):
			n, err1 := base64.RawURLEncoding.DecodeString(k.N)
			e, err2 := base64.RawURLEncoding.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
				continue // malformed, or an RSA key under 2048 bits
			}
			keys[k.Kid] = jwk{key: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, alg: k.Alg}
		case k.Kty == "OKP" && k.Crv == "Ed25519" && (k.Alg == "" || k.Alg == jwt.SigningMethodEdDSA.Alg()):
			x, err := base64.RawURLEncoding.DecodeString(k.X)
			if err != nil || len(x) != ed25519.PublicKeySize {
				continue
			}
			keys[k.Kid] = jwk{key: ed25519.PublicKey(x), alg: k.Alg}
		}
	}
	return keys, nil
}

// errNoKid refuses a token without a kid when keys come from a JWKS.
var errNoKid = errors.New("token has no kid")

// tokenKey returns the JWKS key for t, checking that its type fits t's algorithm.
func (s *jwks) tokenKey(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKid
	}
	k, err := s.key(kid)
	if err != nil {
		return nil, err
	}
	switch t.Method.(type) {
	case *jwt.SigningMethodRSA:
		if rk, ok := k.key.(*rsa.PublicKey); ok && t.Method.Alg() == jwt.SigningMethodRS256.Alg() {
			return rk, nil
		}
	case *jwt.SigningMethodEd25519:
		if ek, ok := k.key.(ed25519.PublicKey); ok {
			return ek, nil
		}
	}
	return nil, fmt.Errorf("key %q does not fit algorithm %s", kid, t.Method.Alg())
}
