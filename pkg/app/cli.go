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
	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/logging"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

const usage = `natter: a chat backend on NATS JetStream.

Usage:
  natter [serve] [flags]          run roles; bare "natter" is "natter serve": every role, embedded
                                  NATS + SQLite, web chat on http://127.0.0.1:8080/
  natter token --user ID [flags]  print a dev token for ID (signed with the data directory's dev secret)
  natter migrate [serve flags]    create or upgrade the store's schema (Cassandra keyspace and tables)
  natter notify replay [flags]    re-send the notifications in NATTER_DLQ to the webhook
  natter creds [--user U]         how another process or a backend service connects to the embedded NATS
  natter bench [flags]            load generator over WebSockets (natter bench --embedded; -h for flags)
  natter version                  print the version, VCS revision and Go version (also --version)
  natter help [serve]             this text, or every serve flag

Every serve flag can also be set in the YAML file (-config) or as NATTER_<FLAG>
(e.g. -gateway.listen is NATTER_GATEWAY_LISTEN, YAML gateway: {listen: ...}; a YAML key
may be written with dashes, as the flag is, or underscores). Flags win over env, env
over YAML.
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
	case "creds":
		err = credsCmd(args[1:], stdout, stderr) // creds_cli.go
	case "bench":
		err = benchCmd(args[1:], stdout, stderr) // bench_cli.go
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, Version())
		return 0
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] == "serve" {
			printServeFlags(stdout)
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
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "natter: %v\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "natter: %v\n", err)
		return 1
	}
	return 0
}

// usageError is a command line that could not be parsed: exit status 2, and the
// message carries its own hint.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// flagError turns a flag parse error of command cmd into a two-line usage error: the
// error, with the closest known flag when one is near, and where to find every flag.
func flagError(cmd string, fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag -" + name
		if near := nearestFlag(fs, name); near != "" {
			msg += " (did you mean -" + near + "?)"
		}
	}
	help := "natter " + cmd + " -h"
	if cmd == "serve" || cmd == "migrate" {
		help = "natter help serve"
	}
	return usageError{fmt.Errorf("%s: %s\nrun `%s` for every flag", cmd, msg, help)}
}

// nearestFlag returns the flag of fs closest to name by edit distance, if it is
// close enough to be a typo ("" otherwise).
func nearestFlag(fs *flag.FlagSet, name string) string {
	best, bestD := "", 1+len(name)/4
	if bestD < 2 {
		bestD = 2
	}
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d <= bestD && (best == "" || d < bestD) {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// printServeFlags writes every serve flag with its default and meaning.
func printServeFlags(w io.Writer) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(w)
	(&Config{}).RegisterFlags(fs)
	fmt.Fprintf(w, "Usage: natter serve [flags]   (bare `natter` runs serve with the defaults)\n\n")
	fs.PrintDefaults()
}

func serve(args []string, stdout, stderr io.Writer) error {
	cfg, err := loadCommand("serve", args, stdout)
	if err != nil {
		return err
	}
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
		dirArg := ""
		if cfg.DataDir != defaultDataDir() {
			dirArg = " --data-dir " + cfg.DataDir
		}
		fmt.Fprintf(stdout, "\nNatter is running.\n  web chat:  http://%s/\n  WebSocket: ws://%s/ws\n  REST API:  http://%s/api/v1/\n", addr, addr, addr)
		if a.Auth != nil && a.Auth.DevSecretPath != "" {
			fmt.Fprintf(stdout, "  dev token: go run . token --user alice%s   (or: natter token --user alice%s)\n", dirArg, dirArg)
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
	if runErr != nil {
		log.Error("stopped", zap.Error(runErr))
	} else {
		log.Info("stopped")
	}
	return runErr
}

// loadCommand loads the configuration of a command taking the serve flags: -h
// prints the flags to stdout, a bad flag is a usageError with a hint.
func loadCommand(cmd string, args []string, stdout io.Writer) (*Config, error) {
	cfg, fs, err := Load(cmd, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printServeFlags(stdout)
		return nil, err
	}
	var pe *config.ParseError
	if errors.As(err, &pe) {
		return nil, flagError(cmd, fs, pe.Err)
	}
	return cfg, err
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	user := fs.String("user", "", "user ID the token speaks for (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	service := fs.Bool("service", false, "a backend service token (may post as system or bot users)")
	scope := fs.String("scope", "", "space-separated scopes of a --service token: chats:admin lets it change members and names of any group")
	dataDir := fs.String("data-dir", defaultDataDir(), "data directory of the server whose dev secret signs the token")
	secretFile := fs.String("auth.secret-file", "", "sign with this HS256 secret file instead of the dev secret")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: natter token --user ID [flags]\n\nPrints a token signed with the dev secret of a server started with the same --data-dir.\n\nFlags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return flagError("token", fs, err)
	}
	if *user == "" {
		return usageError{errors.New("token: --user is required, e.g. natter token --user alice")}
	}
	var secret []byte
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("token: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	} else {
		// Never create a secret here: a token signed with a fresh secret would be
		// refused by the server, which made (or will make) a secret of its own.
		p := filepath.Join(*dataDir, auth.DevSecretName)
		var err error
		if secret, err = auth.LoadDevSecret(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("token: no dev secret in %s: start the server first (natter serve --data-dir %s), or pass the --data-dir it runs with", *dataDir, *dataDir)
			}
			return fmt.Errorf("token: %w", err)
		}
	}
	if *scope != "" && !*service {
		return errors.New("token: --scope is for service tokens: add --service")
	}
	t, err := auth.Sign(secret, *user, *ttl, *service, strings.Fields(*scope)...)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Fprintln(stdout, t)
	return nil
}

// migrate applies the configured store's schema migrations and exits.
func migrate(args []string, stdout io.Writer) error {
	cfg, err := loadCommand("migrate", args, stdout)
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
