package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

func writePEM(t *testing.T, pub any) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	p := filepath.Join(t.TempDir(), "key.pem")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p, b
}

func claims(sub string, ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix(), "iat": time.Now().Unix()}
}

func TestVerifierKeysAndAlgorithms(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rsaPath, rsaPEM := writePEM(t, &rsaKey.PublicKey)
	edPath, _ := writePEM(t, edPub)
	v, err := NewVerifier(Config{PublicKeyFiles: []string{rsaPath, edPath}, Leeway: time.Second}, t.TempDir())
	require.NoError(t, err)

	rs, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("alice", time.Hour)).SignedString(rsaKey)
	require.NoError(t, err)
	id, err := v.Verify(context.Background(), rs)
	require.NoError(t, err)
	require.Equal(t, "alice", id.UserID)

	ed, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims("bob", time.Hour)).SignedString(edPriv)
	require.NoError(t, err)
	id, err = v.Verify(context.Background(), ed)
	require.NoError(t, err)
	require.Equal(t, "bob", id.UserID)

	// Algorithm confusion: an HS256 token "signed" with the RSA public key as secret.
	confused, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("mallory", time.Hour)).SignedString(rsaPEM)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), confused)
	require.ErrorIs(t, err, ErrBadToken)

	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("mallory", time.Hour)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), none)
	require.ErrorIs(t, err, ErrBadToken)

	expired, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("alice", -time.Hour)).SignedString(rsaKey)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), expired)
	require.ErrorIs(t, err, ErrExpired)

	noExp, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "alice"}).SignedString(rsaKey)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), noExp)
	require.ErrorIs(t, err, ErrBadToken, "a token without exp is refused")

	_, err = v.Verify(context.Background(), "")
	require.ErrorIs(t, err, ErrNoToken)
}

func TestVerifierIssuerAudienceLeeway(t *testing.T) {
	secret := strings.Repeat("s", 32)
	v, err := NewVerifier(Config{Secret: secret, Issuer: "https://id.example", Audience: "natter", Leeway: 30 * time.Second}, t.TempDir())
	require.NoError(t, err)
	sign := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
		require.NoError(t, err)
		return s
	}
	ok := claims("alice", time.Hour)
	ok["iss"], ok["aud"] = "https://id.example", "natter"
	_, err = v.Verify(context.Background(), sign(ok))
	require.NoError(t, err)
	wrongIss := claims("alice", time.Hour)
	wrongIss["iss"], wrongIss["aud"] = "https://evil", "natter"
	_, err = v.Verify(context.Background(), sign(wrongIss))
	require.ErrorIs(t, err, ErrBadToken)
	wrongAud := claims("alice", time.Hour)
	wrongAud["iss"], wrongAud["aud"] = "https://id.example", "other"
	_, err = v.Verify(context.Background(), sign(wrongAud))
	require.ErrorIs(t, err, ErrBadToken)
	// Within leeway: expired 10 s ago is still accepted; 2 minutes ago is not.
	skew := claims("alice", -10*time.Second)
	skew["iss"], skew["aud"] = "https://id.example", "natter"
	_, err = v.Verify(context.Background(), sign(skew))
	require.NoError(t, err)
	late := claims("alice", -2*time.Minute)
	late["iss"], late["aud"] = "https://id.example", "natter"
	_, err = v.Verify(context.Background(), sign(late))
	require.ErrorIs(t, err, ErrExpired)
	future := claims("alice", time.Hour)
	future["iss"], future["aud"], future["nbf"] = "https://id.example", "natter", time.Now().Add(time.Hour).Unix()
	_, err = v.Verify(context.Background(), sign(future))
	require.ErrorIs(t, err, ErrBadToken, "not valid yet")
}

func TestDevSecretIsKept(t *testing.T) {
	dir := t.TempDir()
	v1, err := NewVerifier(Config{Dev: true}, dir)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, DevSecretName), v1.DevSecretPath)
	fi, err := os.Stat(v1.DevSecretPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	secret, err := LoadOrCreateDevSecret(v1.DevSecretPath)
	require.NoError(t, err)
	tok, err := Sign(secret, "alice", time.Hour, false)
	require.NoError(t, err)
	v2, err := NewVerifier(Config{Dev: true}, dir)
	require.NoError(t, err)
	_, err = v2.Verify(context.Background(), tok)
	require.NoError(t, err, "a restart keeps the dev secret")
	_, err = NewVerifier(Config{Dev: false}, t.TempDir())
	require.Error(t, err, "production mode needs a key")
}

func TestConfigValidate(t *testing.T) {
	require.Error(t, (&Config{Secret: "short", Dev: true}).Validate())
	require.Error(t, (&Config{Secret: strings.Repeat("s", 32), SecretFile: "f", Dev: true}).Validate())
	require.Error(t, (&Config{Dev: false}).Validate())
	require.NoError(t, (&Config{Dev: true, Leeway: time.Second}).Validate())
}

// A token minted for another data directory says so in dev mode, naming this
// server's directory, instead of a bare "invalid token".
func TestDevKeyMismatchNamesTheDataDir(t *testing.T) {
	mine, other := t.TempDir(), t.TempDir()
	v, err := NewVerifier(Config{Dev: true}, mine)
	require.NoError(t, err)
	s, err := LoadOrCreateDevSecret(filepath.Join(other, DevSecretName))
	require.NoError(t, err)
	tok, err := Sign(s, "alice", time.Minute, false)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), tok)
	require.ErrorIs(t, err, ErrBadToken)
	require.ErrorIs(t, err, ErrDevKeyMismatch)
	require.Contains(t, err.Error(), "--data-dir "+mine)

	_, err = LoadDevSecret(filepath.Join(t.TempDir(), DevSecretName))
	require.ErrorIs(t, err, os.ErrNotExist)
}
