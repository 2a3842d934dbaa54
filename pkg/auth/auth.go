// Package auth verifies the JWTs clients and backend services present, and issues dev
// tokens. Only the algorithms of configured keys are accepted: "none" never is, and an
// HS256 token is never checked against an RSA/Ed25519 public key or the reverse.
package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Config selects the keys tokens are verified with. With no key configured and
// DevSecretFile set, a random HS256 secret is created there and kept (dev mode).
type Config struct {
	// Secret is an HS256 shared secret (at least 32 bytes), from the environment
	// (NATTER_AUTH_SECRET) or this file only: never a flag. Never logged.
	Secret string `yaml:"secret"`
	// SecretFile names a file holding the HS256 secret.
	SecretFile string `yaml:"secret_file"`
	// PublicKeyFiles are PEM files of RSA (RS256) or Ed25519 (EdDSA) public keys.
	PublicKeyFiles []string `yaml:"public_key_files"`
	// JWKSURL is the identity provider's JSON Web Key Set (RS256 and EdDSA keys by
	// kid), fetched at start, refetched every JWKSTTL and on an unknown kid at most
	// once per JWKSMinRefresh (jwks.go).
	JWKSURL        string        `yaml:"jwks_url"`
	JWKSTTL        time.Duration `yaml:"jwks_ttl"`
	JWKSMinRefresh time.Duration `yaml:"jwks_min_refresh"`
	// Issuer, when set, must equal the token's iss.
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be in the token's aud.
	Audience string `yaml:"audience"`
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway"`
	// Dev allows a generated dev secret when no key is configured. Off in production.
	Dev bool `yaml:"dev"`
	// InsecureDevOnPublicAddress lets a gateway in dev mode listen on an address
	// other than loopback. Dev tokens are still issued only to clients on the same
	// machine, and only loopback Host names are served; but any token signed with
	// the dev secret is accepted from anywhere. Never in production.
	InsecureDevOnPublicAddress bool `yaml:"insecure_dev_on_public_address"`
}

// DevMode reports whether c verifies with a generated dev secret: dev allowed and
// no key configured.
func (c *Config) DevMode() bool {
	return c.Dev && c.Secret == "" && c.SecretFile == "" && len(c.PublicKeyFiles) == 0 && c.JWKSURL == ""
}

// RegisterFlags registers the auth.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	config.SecretVar(fs, &c.Secret, "auth.secret", "auth.secret-file", "HS256 secret for client tokens (>= 32 bytes)")
	fs.StringVar(&c.SecretFile, "auth.secret-file", "", "file holding the HS256 secret")
	config.ListVar(fs, &c.PublicKeyFiles, "auth.public-key-files", nil, "comma-separated PEM files of RS256 or EdDSA public keys")
	fs.StringVar(&c.JWKSURL, "auth.jwks-url", "", "identity provider JWKS URL (RS256/EdDSA keys by kid)")
	fs.DurationVar(&c.JWKSTTL, "auth.jwks-ttl", 10*time.Minute, "how often the JWKS is refetched (its keys are dropped after twice this without a successful fetch)")
	fs.DurationVar(&c.JWKSMinRefresh, "auth.jwks-min-refresh", 30*time.Second, "least time between JWKS refetches caused by unknown key ids")
	fs.StringVar(&c.Issuer, "auth.issuer", "", "required token issuer (iss); empty accepts any")
	fs.StringVar(&c.Audience, "auth.audience", "", "required token audience (aud); empty accepts any")
	fs.DurationVar(&c.Leeway, "auth.leeway", 30*time.Second, "clock skew allowed on exp/nbf/iat")
	fs.BoolVar(&c.Dev, "auth.dev", true, "with no key configured, generate a dev HS256 secret in the data directory (gateway on loopback only)")
	fs.BoolVar(&c.InsecureDevOnPublicAddress, "auth.insecure-dev-on-public-address", false, "INSECURE: let a dev-mode gateway listen on a non-loopback address")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if c.Secret != "" && c.SecretFile != "" {
		errs = append(errs, errors.New("auth: set auth.secret or auth.secret-file, not both"))
	}
	if c.Secret != "" && len(c.Secret) < 32 {
		errs = append(errs, errors.New("auth: auth.secret must be at least 32 bytes"))
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute {
		errs = append(errs, errors.New("auth: auth.leeway must be between 0 and 5m"))
	}
	if c.JWKSURL != "" && !strings.HasPrefix(c.JWKSURL, "https://") && !strings.HasPrefix(c.JWKSURL, "http://") {
		errs = append(errs, errors.New("auth: auth.jwks-url must be an http(s) URL"))
	}
	if c.JWKSURL != "" && (c.JWKSTTL <= 0 || c.JWKSMinRefresh < 0) {
		errs = append(errs, errors.New("auth: auth.jwks-ttl must be > 0 and auth.jwks-min-refresh >= 0"))
	}
	if !c.Dev && c.Secret == "" && c.SecretFile == "" && len(c.PublicKeyFiles) == 0 && c.JWKSURL == "" {
		errs = append(errs, errors.New("auth: no key configured: set auth.secret-file, auth.public-key-files or auth.jwks-url (or, on a developer's machine, auth.dev=true with the gateway on 127.0.0.1)"))
	}
	return errors.Join(errs...)
}

// Claims are the token claims Natter reads. Subject is the user ID.
type Claims struct {
	jwt.RegisteredClaims
	// Service marks a backend service token: it may post as a system or bot user.
	Service bool `json:"svc,omitempty"`
	// Name is a display name, optional.
	Name string `json:"name,omitempty"`
	// Scope is a space-separated list of scopes (as in OAuth 2.0). Natter reads one:
	// protocol.ScopeChatsAdmin ("chats:admin"), which lets a service token (svc true)
	// make chat changes in any group; on a user token it means nothing.
	Scope string `json:"scope,omitempty"`
}

// Identity is who a verified token speaks for.
type Identity struct {
	UserID  string
	Service bool
	// ChatAdmin is true for a service token holding the chats:admin scope: it may
	// add and remove members, change roles and rename any group, as its admin would.
	ChatAdmin bool
	// AccountsAdmin is true for a service token holding the accounts:admin scope:
	// it may erase accounts (the admin API, docs/privacy.md).
	AccountsAdmin bool
	ExpiresAt     time.Time // zero: no expiry
}

// Errors returned by Verify.
var (
	ErrNoToken  = errors.New("auth: no token")
	ErrExpired  = errors.New("auth: token expired")
	ErrBadToken = errors.New("auth: invalid token")
	// ErrRevoked (which wraps ErrBadToken) is a valid token of an erased account
	// (Verifier.SetRevoked).
	ErrRevoked = fmt.Errorf("%w: the account was erased", ErrBadToken)
	// ErrTokenTooLarge (which wraps into ErrBadToken in Verify's errors) is a token
	// over MaxTokenBytes.
	ErrTokenTooLarge = fmt.Errorf("auth: token over %d bytes", MaxTokenBytes)
	// ErrDevKeyMismatch (which wraps ErrBadToken) is an HS256 token whose signature
	// does not match the dev secret: in dev mode almost always a token minted for
	// another data directory. Its message says which directory this server uses.
	ErrDevKeyMismatch = fmt.Errorf("%w: signature does not match this server's dev secret", ErrBadToken)
)

// MaxTokenBytes is the longest token Verify looks at. A real JWT is well under 2
// KiB; a longer one is refused before it is decoded or its signature checked, so a
// megabyte of "token" costs a length comparison.
const MaxTokenBytes = 8 << 10

// Verifier checks tokens. It is safe for concurrent use. With auth.jwks-url it runs
// a refetch goroutine until Close.
type Verifier struct {
	revoked atomic.Pointer[func(subject string) bool] // SetRevoked
	hmac    []byte
	pubs    []crypto.PublicKey
	methods []string
	parser  *jwt.Parser
	jwks    *jwks // nil: no auth.jwks-url
	// DevSecretPath is where the generated dev secret lives ("" if not in dev mode).
	DevSecretPath string
}

// DevSecretName is the file name of the dev secret inside the data directory.
const DevSecretName = "dev-secret"

// NewVerifier builds a Verifier from cfg. In dev mode with no key configured, the
// secret in dataDir/dev-secret is read, or created (0600) if missing.
func NewVerifier(cfg Config, dataDir string) (*Verifier, error) {
	v := &Verifier{}
	switch {
	case cfg.Secret != "":
		v.hmac = []byte(cfg.Secret)
	case cfg.SecretFile != "":
		b, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("auth: read secret file: %w", err)
		}
		v.hmac = []byte(strings.TrimSpace(string(b)))
		if len(v.hmac) < 32 {
			return nil, fmt.Errorf("auth: secret in %s is shorter than 32 bytes", cfg.SecretFile)
		}
	}
	for _, f := range cfg.PublicKeyFiles {
		k, err := loadPublicKey(f)
		if err != nil {
			return nil, err
		}
		v.pubs = append(v.pubs, k)
	}
	if cfg.JWKSURL != "" {
		var err error
		if v.jwks, err = newJWKS(cfg.JWKSURL, cfg.JWKSTTL, cfg.JWKSMinRefresh); err != nil {
			return nil, err
		}
	}
	if v.hmac == nil && len(v.pubs) == 0 && v.jwks == nil {
		if !cfg.Dev {
			return nil, errors.New("auth: no key configured")
		}
		p := filepath.Join(dataDir, DevSecretName)
		s, err := LoadOrCreateDevSecret(p)
		if err != nil {
			return nil, err
		}
		v.hmac = s
		v.DevSecretPath = p
	}
	if v.hmac != nil {
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}
	for _, k := range v.pubs {
		switch k.(type) {
		case *rsa.PublicKey:
			v.methods = append(v.methods, jwt.SigningMethodRS256.Alg())
		case ed25519.PublicKey:
			v.methods = append(v.methods, jwt.SigningMethodEdDSA.Alg())
		}
	}
	if v.jwks != nil {
		for _, m := range []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodEdDSA.Alg()} {
			if !slices.Contains(v.methods, m) {
				v.methods = append(v.methods, m)
			}
		}
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.methods), jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired()}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

func loadPublicKey(path string) (crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read public key: %w", err)
	}
	if k, err := jwt.ParseRSAPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	if k, err := jwt.ParseEdPublicKeyFromPEM(b); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("auth: %s is not a PEM RSA or Ed25519 public key", path)
}

// LoadDevSecret reads the dev secret at path. A missing file gives an error that
// wraps os.ErrNotExist.
func LoadDevSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read dev secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("auth: dev secret %s is empty", path)
	}
	return []byte(s), nil
}

// LoadOrCreateDevSecret reads the dev secret at path, creating a random one if the
// file does not exist.
func LoadOrCreateDevSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: read dev secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: create data directory: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("auth: write dev secret: %w", err)
	}
	return []byte(s), nil
}

// Verify parses and checks token and returns the identity it carries. A fetch of
// the JWKS it needs (a kid not seen yet) ends with ctx. It returns ErrNoToken for an
// empty token, ErrTokenTooLarge (which also matches ErrBadToken) for one over
// MaxTokenBytes, ErrExpired for an expired one and ErrBadToken (wrapped, with the
// reason) for anything else wrong.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrNoToken
	}
	if len(token) > MaxTokenBytes {
		return Identity{}, fmt.Errorf("%w: %w", ErrBadToken, ErrTokenTooLarge)
	}
	var claims Claims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) { return v.key(ctx, t) })
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Identity{}, ErrExpired
		}
		if v.IsDev() && errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			dir := filepath.Dir(v.DevSecretPath)
			return Identity{}, fmt.Errorf("%w (%s): mint one with `natter token --user ID --data-dir %s`", ErrDevKeyMismatch, v.DevSecretPath, dir)
		}
		return Identity{}, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if err := ids.Validate("user", claims.Subject); err != nil {
		return Identity{}, fmt.Errorf("%w: sub: %v", ErrBadToken, err)
	}
	if r := v.revoked.Load(); r != nil && (*r)(claims.Subject) {
		return Identity{}, ErrRevoked
	}
	scopes := strings.Fields(claims.Scope)
	id := Identity{UserID: claims.Subject, Service: claims.Service,
		ChatAdmin:     claims.Service && slices.Contains(scopes, protocol.ScopeChatsAdmin),
		AccountsAdmin: claims.Service && slices.Contains(scopes, protocol.ScopeAccountsAdmin)}
	if claims.ExpiresAt != nil {
		id.ExpiresAt = claims.ExpiresAt.Time
	}
	return id, nil
}

// SetRevoked makes Verify refuse, with ErrRevoked, every token whose subject
// revoked reports (erased accounts: the gateway's deny list). Safe to call while
// verifying; nil removes it.
func (v *Verifier) SetRevoked(revoked func(subject string) bool) {
	if revoked == nil {
		v.revoked.Store(nil)
		return
	}
	v.revoked.Store(&revoked)
}

// key picks the verification key for the token's algorithm. The parser has already
// refused algorithms outside the allow-list, so HS/RS confusion cannot reach here.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	if _, hmac := t.Method.(*jwt.SigningMethodHMAC); !hmac && v.jwks != nil {
		if kid, _ := t.Header["kid"].(string); kid != "" || len(v.pubs) == 0 {
			return v.jwks.tokenKey(ctx, t) // jwks.go
		}
	}
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.hmac != nil {
			return v.hmac, nil
		}
	case *jwt.SigningMethodRSA:
		for _, k := range v.pubs {
			if rk, ok := k.(*rsa.PublicKey); ok {
				return rk, nil
			}
		}
	case *jwt.SigningMethodEd25519:
		for _, k := range v.pubs {
			if ek, ok := k.(ed25519.PublicKey); ok {
				return ek, nil
			}
		}
	}
	return nil, fmt.Errorf("no key for algorithm %s", t.Method.Alg())
}

// Close stops the JWKS refetch (no-op without auth.jwks-url, or on nil).
func (v *Verifier) Close() {
	if v != nil && v.jwks != nil {
		v.jwks.close()
	}
}

// Sign returns an HS256 token for userID valid for ttl, signed with secret. Dev
// tooling and tests use it; production tokens come from the operator's issuer.
func Sign(secret []byte, userID string, ttl time.Duration, service bool, scopes ...string) (string, error) {
	if err := ids.Validate("user", userID); err != nil {
		return "", err
	}
	now := time.Now()
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: userID, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl))}, Service: service, Scope: strings.Join(scopes, " ")}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
}

// ErrNotDev is returned by SignDev when the Verifier is not in dev mode.
var ErrNotDev = errors.New("auth: not in dev mode")

// IsDev reports whether v verifies with a generated dev secret (DevSecretPath set).
func (v *Verifier) IsDev() bool { return v != nil && v.DevSecretPath != "" }

// SignDev returns a user token for userID, valid for ttl, signed with the dev secret.
// It returns ErrNotDev unless v is in dev mode, so a production verifier never issues
// tokens; an invalid userID gives the ids validation error.
func (v *Verifier) SignDev(userID string, ttl time.Duration) (string, error) {
	if !v.IsDev() {
		return "", ErrNotDev
	}
	return Sign(v.hmac, userID, ttl, false)
}
