package natsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// EmbeddedStartTimeout bounds how long StartEmbedded waits for the server to be
// ready when it reported no error: recovering a large store can take a while, a
// start that failed does not wait for it (the server's own error ends the wait).
var EmbeddedStartTimeout = 30 * time.Second

// Embedded is a running embedded NATS server, the watch over its JetStream storage
// (storage.go) and its users' credentials (creds.go).
type Embedded struct {
	Server  *server.Server
	Storage *StorageWatch
	// Creds are the users' passwords; CredsDir the directory holding them.
	Creds    Creds
	CredsDir string
}

// StartEmbedded starts an in-process NATS server with JetStream storing under
// dataDir/nats, and waits until it is ready. The server's warnings and errors go
// to log (its notices at debug level). A start that cannot work returns at once
// with the cause: the store directory that cannot be created or written, the
// address in use, or the server's own error.
//
// Every connection authenticates, the in-process ones too: as one of Users, with
// the passwords LoadOrCreateCreds keeps in dataDir/nats-credentials, and with that
// user's Permissions. It listens on TCP only when c.Listen is not "none", and on a
// non-loopback address only with TLS (c.ListenTLSCert).
func StartEmbedded(c *Config, dataDir string, log *zap.Logger) (*Embedded, error) {
	always, interval, err := c.syncPolicy()
	if err != nil {
		return nil, err
	}
	storeDir := filepath.Join(dataDir, "nats")
	if err := checkWritableDir(storeDir); err != nil {
		return nil, fmt.Errorf("embedded nats: store directory: %w (check data-dir)", err)
	}
	credsDir := CredsDir(dataDir)
	creds, err := LoadOrCreateCreds(credsDir)
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		Users:      ServerUsers(creds, c.Subjects()),
		ServerName: "natter-embedded",
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		// The server's own logger is off: serverLog below routes it into log.
		NoLog:      true,
		SyncAlways: always,
		// Large fan-outs burst many messages to one connection at once.
		MaxPending: 256 << 20,
	}
	if !always {
		opts.SyncInterval = interval
	}
	if c.Listen == "none" {
		opts.DontListen = true
	} else {
		host, port, err := splitListen(c.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats.listen: %w", err)
		}
		if !isLoopback(host) && c.ListenTLSCert == "" {
			return nil, fmt.Errorf("nats.listen %s is not a loopback address and has no TLS: set nats.listen-tls-cert and nats.listen-tls-key", c.Listen)
		}
		opts.Host, opts.Port = host, port
		if c.ListenTLSCert != "" {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.ListenTLSCert, KeyFile: c.ListenTLSKey})
			if err != nil {
				return nil, fmt.Errorf("nats.listen-tls-cert: %w", err)
			}
			opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	sl := newServerLog(log.With(zap.String("component", "nats-server")))
	ns.SetLoggerV2(sl, false, false, false)
	go ns.Start()
	deadline := time.After(EmbeddedStartTimeout)
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-sl.fatal:
			ns.Shutdown()
			if strings.Contains(msg, "Error listening") {
				msg += " (is it in use? set nats.listen, or none to serve in-process only)"
			}
			return nil, fmt.Errorf("embedded nats: %s", msg)
		case <-deadline:
			ns.Shutdown()
			return nil, fmt.Errorf("embedded nats: not ready after %s (store %s)", EmbeddedStartTimeout, storeDir)
		default:
		}
	}
	w := newEmbeddedStorageWatch(ns, opts, log)
	sl.setOnError(w.kick)
	if c.MediaMaxBytes == 0 {
		c.MediaMaxBytes = autoMediaMaxBytes(ns.JetStreamConfig())
		log.Info("media bucket size", zap.Int64("nats.media-max-bytes", c.MediaMaxBytes))
	}
	return &Embedded{Server: ns, Storage: w, Creds: creds, CredsDir: credsDir}, nil
}

// autoMediaMaxBytes is nats.media-max-bytes 0 on the embedded server: the bucket's
// size is reserved against what JetStream may store (75% of the data directory's
// free disk at start), so a fixed 10 GiB would keep Natter from starting on a small
// disk. It takes DefaultMediaMaxBytes, or half of what JetStream may store if that
// is less (the other half for the streams), at least 1 MiB.
func autoMediaMaxBytes(jsc *server.JetStreamConfig) int64 {
	if jsc == nil || jsc.MaxStore <= 0 {
		return DefaultMediaMaxBytes
	}
	return max(min(DefaultMediaMaxBytes, jsc.MaxStore/2), 1<<20)
}

// checkWritableDir creates dir if needed and proves it writable with a file of its
// own: the server would otherwise fail later, deep in JetStream.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".natter-write-probe-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	_, werr := f.Write([]byte("probe"))
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	return nil
}
