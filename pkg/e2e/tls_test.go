package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/natter-chat/natter/pkg/testutil"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns their
// paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natter-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestGatewayServesTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := testutil.Config(t)
	cfg.Gateway.TLSCert, cfg.Gateway.TLSKey = certFile, keyFile
	require.NoError(t, cfg.Gateway.Validate())
	n := testutil.StartNatter(t, cfg)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "wss://" + n.GatewayAddr().String() + "/ws"
	ws, _, err := websocket.Dial(ctxT(t, 5*time.Second), url, &websocket.DialOptions{HTTPClient: hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + n.Token(t, "alice")}}})
	require.NoError(t, err)
	defer ws.CloseNow()
	_, data, err := ws.Read(ctxT(t, 5*time.Second))
	require.NoError(t, err)
	require.Contains(t, string(data), `"type":"connected"`)
	// Plain HTTP to the TLS port is not served.
	resp, err := http.Get("http://" + n.GatewayAddr().String() + "/healthz")
	if err == nil {
		defer resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	}
	// A mismatched pair is refused by Validate.
	cfg2 := testutil.Config(t)
	cfg2.Gateway.TLSCert = certFile
	require.ErrorContains(t, cfg2.Gateway.Validate(), "tls")
	cfg2.Gateway.TLSKey = certFile
	err = cfg2.Gateway.Validate()
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "tls-cert"))
}
