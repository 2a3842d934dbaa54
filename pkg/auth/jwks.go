package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// jwksTimeout bounds one fetch of the key set.
const jwksTimeout = 5 * time.Second

// jwksMaxBytes bounds the key set document read from the provider.
const jwksMaxBytes = 1 << 20

// jwks is a JSON Web Key Set fetched from auth.jwks-url: the identity provider's
// current signing keys by kid (RS256 and EdDSA), kept by keyfunc/jwkset. The set is
// fetched at start and refetched every ttl in a goroutine (stopped by close); a
// token with a kid not in the set refetches it (key rotation) within the verifying
// call's context, but at most once per minRefresh, so a flood of tokens with made-up
// kids cannot hammer the provider: the others are refused at once. Lookups read a
// snapshot under the storage's read lock, never held across a fetch. After 2×ttl
// without a successful fetch the keys are dropped: the provider may have revoked
// them meanwhile.
type jwks struct {
	kf     keyfunc.Keyfunc
	store  jwkset.Storage // the URL's keys (KeyReplaceAll drops them)
	ttl    time.Duration
	cancel context.CancelFunc
	now    func() time.Time // the outage clock; tests move it

	lastOK  atomic.Int64 // unix nanoseconds of the last fetch answered 200 OK
	fetches atomic.Int64 // fetch attempts, for tests
}

func newJWKS(url string, ttl, minRefresh time.Duration) (*jwks, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &jwks{ttl: ttl, cancel: cancel, now: time.Now}
	s.lastOK.Store(s.now().UnixNano())
	client := &http.Client{Timeout: jwksTimeout, Transport: jwksTransport{base: http.DefaultTransport, s: s}}
	store, err := jwkset.NewStorageFromHTTP(url, jwkset.HTTPClientStorageOptions{
		Client: client, Ctx: ctx, HTTPTimeout: jwksTimeout, RefreshInterval: ttl,
		// An unreachable provider at start is an outage like any other: tokens are
		// refused until it answers, the process still starts.
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       s.refreshFailed,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: jwks: %w", err)
	}
	s.store = store
	limit := rate.Inf
	if minRefresh > 0 {
		limit = rate.Every(minRefresh)
	}
	all, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{url: store},
		// A refetch for an unknown kid waits for the limiter only as long as one
		// fetch may take; a kid that would wait longer is refused at once.
		RateLimitWaitMax:  jwksTimeout,
		RefreshUnknownKID: rate.NewLimiter(limit, 1),
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: jwks: %w", err)
	}
	s.kf, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: all, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("auth: jwks: %w", err)
	}
	return s, nil
}

// close stops the periodic refetch.
func (s *jwks) close() { s.cancel() }

// refreshFailed drops the keys once no fetch has succeeded for 2×ttl.
func (s *jwks) refreshFailed(ctx context.Context, _ error) {
	if s.now().Sub(time.Unix(0, s.lastOK.Load())) >= 2*s.ttl {
		_ = s.store.KeyReplaceAll(ctx, nil) // memory storage: cannot fail
	}
}

// jwksTransport counts fetches, notes successful ones and bounds what is read.
type jwksTransport struct {
	base http.RoundTripper
	s    *jwks
}

func (t jwksTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.s.fetches.Add(1)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		t.s.lastOK.Store(t.s.now().UnixNano())
	}
	resp.Body = http.MaxBytesReader(nil, resp.Body, jwksMaxBytes)
	return resp, nil
}

// errNoKid refuses a token without a kid when keys come from a JWKS.
var errNoKid = errors.New("token has no kid")

// tokenKey returns the JWKS key for t, checking that its type fits t's algorithm
// and that an RSA key has at least 2048 bits. A refetch it causes ends with ctx.
func (s *jwks) tokenKey(ctx context.Context, t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errNoKid
	}
	k, err := s.kf.KeyfuncCtx(ctx)(t)
	if err != nil {
		if errors.Is(err, jwkset.ErrKeyNotFound) {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return nil, err
	}
	switch t.Method.(type) {
	case *jwt.SigningMethodRSA:
		if rk, ok := k.(*rsa.PublicKey); ok && t.Method.Alg() == jwt.SigningMethodRS256.Alg() && rk.N.BitLen() >= 2048 {
			return rk, nil
		}
	case *jwt.SigningMethodEd25519:
		if ek, ok := k.(ed25519.PublicKey); ok {
			return ek, nil
		}
	}
	return nil, fmt.Errorf("key %q does not fit algorithm %s", kid, t.Method.Alg())
}
