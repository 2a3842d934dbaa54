package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/logging"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

const usage = `natter: a chat backend on NATS JetStream.

Usage:
  natter serve [flags]            run roles (default: all, embedded NATS + SQLite, web chat on :8080)
  natter token --user ID [flags]  print a dev token for ID (signed with the dev secret)
  natter migrate [serve flags]    create or upgrade the store's schema (Cassandra keyspace and tables)
  natter notify replay [flags]    re-send the notifications in NATTER_DLQ to the webhook
  natter bench [flags]            load generator over WebSockets (natter bench --embedded; -h for flags)
  natter help [serve]             this text, or every serve flag

Every serve flag can also be set in the YAML file (-config) or as NATTER_<FLAG>
(e.g. -gateway.listen is NATTER_GATEWAY_LISTEN). Flags win over env, env over YAML.
`

// Main runs the natter command line and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		args = []string{"serve"}
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stdout, stderr)
	case "token":
		err = token(args[1:], stdout, stderr)
	case "migrate":
		err = migrate(args[1:], stdout)
	case "notify":
		err = notifyCmd(args[1:], stdout, stderr) // notify_cli.go
	case "bench":
		err = benchCmd(args[1:], stdout, stderr) // bench_cli.go
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] == "serve" {
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			fs.SetOutput(stdout)
			(&Config{}).RegisterFlags(fs)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if strings.HasPrefix(args[0], "-") {
			err = serve(args, stdout, stderr)
		} else {
			fmt.Fprintf(stderr, "natter: unknown command %q\n\n%s", args[0], usage)
			return 2
		}
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "natter: %v\n", err)
		return 1
	}
	return 0
}

func serve(args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := Load("serve", args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w\n(run `natter help serve` for every flag)", err)
	}
	_ = fs
	log, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	if addr := a.GatewayAddr(); addr != nil {
		tokenCmd := "natter token --user alice"
		if cfg.DataDir != defaultDataDir() {
			tokenCmd += " --data-dir " + cfg.DataDir
		}
		fmt.Fprintf(stdout, "\nNatter is running.\n  web chat:  http://%s/\n  WebSocket: ws://%s/ws\n  REST API:  http://%s/api/v1/\n", addr, addr, addr)
		if a.Auth != nil && a.Auth.DevSecretPath != "" {
			fmt.Fprintf(stdout, "  dev token: go run . token --user alice   (or: %s)\n", tokenCmd)
		}
		fmt.Fprintf(stdout, "  data:      %s\nPress Ctrl-C to stop.\n\n", cfg.DataDir)
	}
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case <-a.Done():
	}
	runErr := a.Err()
	if err := a.Close(); err != nil {
		log.Warn("close", zap.Error(err))
	}
	return runErr
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "user ID the token speaks for (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	service := fs.Bool("service", false, "a backend service token (may post as system or bot users)")
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory holding the dev secret")
	secretFile := fs.String("auth.secret-file", "", "sign with this HS256 secret file instead of the dev secret")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("token: --user is required, e.g. natter token --user alice")
	}
	var secret []byte
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	} else {
		var err error
		if secret, err = auth.LoadOrCreateDevSecret(filepath.Join(*dataDir, auth.DevSecretName)); err != nil {
			return fmt.Errorf("token: %w", err)
		}
	}
	t, err := auth.Sign(secret, *user, *ttl, *service)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, t)
	return nil
}

// migrate applies the configured store's schema migrations and exits.
func migrate(args []string, stdout io.Writer) error {
	cfg, _, err := Load("migrate", args)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.Log)
	if err != nil {
		return err
	}
	defer log.Sync()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if cfg.Store.Backend == "cassandra" {
		if err := store.MigrateCassandra(ctx, cfg.Cassandra, log); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Cassandra keyspace %s is up to date.\n", cfg.Cassandra.Keyspace)
		return nil
	}
	st, err := OpenStore(ctx, cfg, log) // SQLite migrates on open
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "SQLite store is up to date.")
	return st.Close()
}
