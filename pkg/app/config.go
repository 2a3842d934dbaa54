// Package app assembles a natter process: configuration, the role table, shared
// dependencies (NATS, store, auth) and the lifecycle of the selected roles.
package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/natter-chat/natter/gateway"
	"github.com/natter-chat/natter/notifier"
	"github.com/natter-chat/natter/persister"
	"github.com/natter-chat/natter/pkg/admin"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/logging"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/presence"
	"github.com/natter-chat/natter/sequencer"
)

// Config is the whole configuration of a natter process.
type Config struct {
	// ConfigFile is the YAML file read (flag -config, env NATTER_CONFIG).
	ConfigFile string `yaml:"-"`
	// DataDir holds the embedded NATS store, the SQLite file and the dev secret.
	DataDir string `yaml:"data_dir"`
	// Roles to run: "all" or a list of gateway, sequencer, persister, notifier, presence.
	Roles []string `yaml:"roles"`

	Log       logging.Config   `yaml:"log"`
	NATS      natsutil.Config  `yaml:"nats"`
	Auth      auth.Config      `yaml:"auth"`
	Store     StoreConfig      `yaml:"store"`
	Gateway   gateway.Config   `yaml:"gateway"`
	Sequencer sequencer.Config `yaml:"sequencer"`
	Persister persister.Config `yaml:"persister"`
	Presence  presence.Config  `yaml:"presence"`
	Notifier  notifier.Config  `yaml:"notifier"`
	Admin     admin.Config     `yaml:"admin"`
	// Cassandra is used when store.backend is cassandra.
	Cassandra store.CassandraConfig `yaml:"cassandra"`
}

// StoreConfig is the store section.
type StoreConfig struct {
	// Backend is "sqlite" (embedded, the default) or "cassandra".
	Backend string `yaml:"backend"`
	// SQLitePath is the SQLite file; empty means <data_dir>/natter.db.
	SQLitePath string `yaml:"sqlite_path"`
	// Migrate applies pending Cassandra schema migrations at start (SQLite always
	// migrates itself). Off by default: production runs `natter migrate` once.
	Migrate bool `yaml:"migrate"`
}

// RegisterFlags registers the store.* flags.
func (c *StoreConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Backend, "store.backend", "sqlite", "history store: sqlite or cassandra")
	fs.StringVar(&c.SQLitePath, "store.sqlite-path", "", "SQLite file (default <data-dir>/natter.db)")
	fs.BoolVar(&c.Migrate, "store.migrate", false, "apply Cassandra schema migrations at start (else run `natter migrate`)")
}

// Validate checks the section.
func (c *StoreConfig) Validate() error {
	switch c.Backend {
	case "sqlite", "cassandra":
		return nil
	}
	return fmt.Errorf("store: store.backend %q: use sqlite or cassandra", c.Backend)
}

func (c *Config) cassandraValidate() error {
	if c.Store.Backend != "cassandra" {
		return nil
	}
	return c.Cassandra.Validate()
}

// RegisterFlags registers every flag of the configuration on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ConfigFile, "config", "", "YAML configuration file (env NATTER_CONFIG)")
	fs.StringVar(&c.DataDir, "data-dir", defaultDataDir(), "data directory: embedded NATS store, SQLite file, dev secret")
	config.ListVar(fs, &c.Roles, "roles", []string{"all"}, "roles to run: all, or a comma-separated list of "+roleList())
	c.Log.RegisterFlags(fs)
	c.NATS.RegisterFlags(fs)
	c.Auth.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	c.Cassandra.RegisterFlags(fs)
	c.Gateway.RegisterFlags(fs)
	c.Sequencer.RegisterFlags(fs)
	c.Persister.RegisterFlags(fs)
	c.Presence.RegisterFlags(fs)
	c.Notifier.RegisterFlags(fs)
	c.Admin.RegisterFlags(fs)
}

func defaultDataDir() string {
	if d, err := os.UserHomeDir(); err == nil && d != "" && d != "/" {
		return filepath.Join(d, ".local", "share", "natter")
	}
	return "natter-data"
}

// Validate checks every section and joins the errors.
func (c *Config) Validate() error {
	errs := []error{
		c.Log.Validate(), c.NATS.Validate(), c.Auth.Validate(), c.Store.Validate(), c.cassandraValidate(),
		c.Gateway.Validate(), c.Sequencer.Validate(), c.Persister.Validate(), c.Admin.Validate(),
	}
	errs = append(errs, c.Presence.Validate(), c.Notifier.Validate())
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir must not be empty"))
	}
	if _, err := Targets(c.Roles); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.devOnLoopback(), c.distinctListens())
	return errors.Join(errs...)
}

// distinctListens refuses two of the process's listeners on one fixed address:
// the second would fail to bind, later and less clearly.
func (c *Config) distinctListens() error {
	seen := map[string]string{}
	check := func(setting, addr string) error {
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port == "0" || port == "-1" {
			return nil // invalid ones are their section's to report; port 0 picks a free one
		}
		key := net.JoinHostPort(host, port)
		if other, ok := seen[key]; ok {
			return fmt.Errorf("%s and %s are both %s: give each its own address", other, setting, addr)
		}
		seen[key] = setting
		return nil
	}
	var errs []error
	if targets, err := Targets(c.Roles); err == nil && slices.Contains(targets, RoleGateway) {
		errs = append(errs, check("gateway.listen", c.Gateway.Listen))
	}
	if c.Admin.Listen != "" {
		errs = append(errs, check("admin.listen", c.Admin.Listen))
	}
	if c.NATS.URL == "" && c.NATS.Listen != "none" {
		errs = append(errs, check("nats.listen", c.NATS.Listen))
	}
	return errors.Join(errs...)
}

// devOnLoopback refuses a gateway in dev mode (anyone may mint a token) on an
// address other than loopback, unless auth.insecure-dev-on-public-address says so.
func (c *Config) devOnLoopback() error {
	targets, err := Targets(c.Roles)
	if err != nil || !slices.Contains(targets, RoleGateway) || !c.Auth.DevMode() || c.Auth.InsecureDevOnPublicAddress {
		return nil
	}
	host, _, err := net.SplitHostPort(c.Gateway.Listen)
	if err != nil || gateway.LoopbackHost(host) {
		return nil // a malformed address is gateway.Validate's to report
	}
	return fmt.Errorf("gateway.listen %s is not a loopback address and auth is in dev mode (no key configured: dev tokens for anyone): "+
		"configure auth.secret-file, auth.public-key-files or auth.jwks-url, or listen on 127.0.0.1", c.Gateway.Listen)
}

// Load parses args (after the subcommand) into a validated Config.
func Load(name string, args []string) (*Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the caller reports errors once, with a hint (cli.go)
	var c Config
	c.RegisterFlags(fs)
	if err := config.Load(fs, args, &c); err != nil {
		return nil, fs, err
	}
	if err := c.Validate(); err != nil {
		sep := " " // one cause: one line; several: one line each
		if strings.Contains(err.Error(), "\n") {
			sep = "\n"
		}
		return nil, fs, fmt.Errorf("invalid configuration:%s%w", sep, err)
	}
	return &c, fs, nil
}

// DefaultConfig returns the configuration with every flag default, for tests.
func DefaultConfig() *Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return &c
}
