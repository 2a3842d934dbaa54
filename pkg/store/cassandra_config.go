package store

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/config"
	"go.uber.org/zap"
)

// CassandraConfig is the cassandra section: where the cluster is and how Natter
// uses it. Every default is the default of its flag (RegisterFlags).
type CassandraConfig struct {
	// Hosts are contact points, "host" or "host:port" (a host without a port uses
	// Port). The driver discovers the rest of the cluster from them. At least one.
	Hosts []string `yaml:"hosts"`
	// Port is the CQL native port of hosts given without one. Default 9042.
	Port int `yaml:"port"`
	// Keyspace holding Natter's tables: lowercase letters, digits and _, at most 48
	// characters, starting with a letter. Default "natter".
	Keyspace string `yaml:"keyspace"`
	// LocalDC, if set, is the data center whose nodes coordinate every query
	// (DC-aware routing, for LOCAL_* consistency in multi-DC clusters). Empty: all
	// nodes, token-aware round robin.
	LocalDC string `yaml:"local_dc"`
	// Consistency of every read and write: ONE, TWO, THREE, QUORUM, ALL,
	// LOCAL_QUORUM, EACH_QUORUM or LOCAL_ONE. Default LOCAL_QUORUM, which with RF 3
	// gives read-your-writes and survives one replica down.
	Consistency string `yaml:"consistency"`
	// ReplicationFactor is used only when migrations create the keyspace (replicas
	// in every data center): 1 for a development node, 3 in production. Default 1.
	ReplicationFactor int `yaml:"replication_factor"`
	// BucketWidth is the time window of one message partition: a chat's messages
	// from the same window share a partition. Pick it so a busy chat's window stays
	// well under 100 MB. Whole milliseconds, 1m to 8760h (one year). It may be
	// changed at any time; it applies to messages written afterwards. Default 24h.
	BucketWidth time.Duration `yaml:"bucket_width"`
	// Username and Password authenticate with PasswordAuthenticator; both or
	// neither. The password comes from PasswordFile, the environment
	// (NATTER_CASSANDRA_PASSWORD) or the config file, never a flag; it has no
	// default and is never logged.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// TLS to the nodes.
	TLS CassandraTLS `yaml:"tls"`
	// Timeout bounds each request to a node (retries are extra). Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// ConnectTimeout bounds connecting to a node. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// NumConns is the number of connections to each node (each multiplexes
	// thousands of requests). Default 2.
	NumConns int `yaml:"num_conns"`
	// WriteConcurrency is how many writes (single statements or single-partition
	// batches) the store keeps in flight at once, across all AppendMessages calls.
	// Default 64.
	WriteConcurrency int `yaml:"write_concurrency"`
	// AutoMigrate asks the process to apply pending migrations (MigrateCassandra)
	// before it opens the store. OpenCassandra itself never migrates. Default false:
	// run `natter migrate`.
	AutoMigrate bool `yaml:"auto_migrate"`
}

// CassandraTLS configures TLS to the Cassandra nodes. TLS is on when Enabled is
// true or any file is set; the node's certificate is then verified against CAFile
// (or the system roots if empty) unless InsecureSkipVerify.
type CassandraTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of CA certificates that sign the nodes' certificates.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS); both
	// or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify turns off verification of the nodes' certificates. Tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// RegisterFlags registers the cassandra.* flags.
func (c *CassandraConfig) RegisterFlags(fs *flag.FlagSet) {
	config.ListVar(fs, &c.Hosts, "cassandra.hosts", []string{"127.0.0.1"}, "Cassandra contact points, comma-separated host or host:port")
	fs.IntVar(&c.Port, "cassandra.port", 9042, "CQL port of hosts given without one")
	fs.StringVar(&c.Keyspace, "cassandra.keyspace", "natter", "keyspace of Natter's tables")
	fs.StringVar(&c.LocalDC, "cassandra.local-dc", "", "local data center for DC-aware routing; empty routes to all nodes")
	fs.StringVar(&c.Consistency, "cassandra.consistency", "LOCAL_QUORUM", "consistency level of reads and writes")
	fs.IntVar(&c.ReplicationFactor, "cassandra.replication-factor", 1, "replicas per data center when migrate creates the keyspace (3 in production)")
	fs.DurationVar(&c.BucketWidth, "cassandra.bucket-width", 24*time.Hour, "time window of one message partition")
	fs.StringVar(&c.Username, "cassandra.username", "", "user for PasswordAuthenticator")
	config.SecretVar(fs, &c.Password, "cassandra.password", "cassandra.password-file", "password for PasswordAuthenticator; never logged")
	fs.StringVar(&c.PasswordFile, "cassandra.password-file", "", "file holding the password for PasswordAuthenticator")
	fs.BoolVar(&c.TLS.Enabled, "cassandra.tls", false, "use TLS (implied by any cassandra.tls-* file)")
	fs.StringVar(&c.TLS.CAFile, "cassandra.tls-ca-file", "", "PEM CA certificates for the nodes' certificates")
	fs.StringVar(&c.TLS.CertFile, "cassandra.tls-cert-file", "", "PEM client certificate (mutual TLS)")
	fs.StringVar(&c.TLS.KeyFile, "cassandra.tls-key-file", "", "PEM client key (mutual TLS)")
	fs.BoolVar(&c.TLS.InsecureSkipVerify, "cassandra.tls-insecure-skip-verify", false, "do not verify the nodes' certificates (tests only)")
	fs.DurationVar(&c.Timeout, "cassandra.timeout", 5*time.Second, "timeout of one request to a node")
	fs.DurationVar(&c.ConnectTimeout, "cassandra.connect-timeout", 5*time.Second, "timeout of connecting to a node")
	fs.IntVar(&c.NumConns, "cassandra.num-conns", 2, "connections per node")
	fs.IntVar(&c.WriteConcurrency, "cassandra.write-concurrency", 64, "writes the store keeps in flight")
	fs.BoolVar(&c.AutoMigrate, "cassandra.auto-migrate", false, "apply pending schema migrations at start instead of requiring `natter migrate`")
}

var keyspaceRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// Validate checks the section; it reports every problem at once.
func (c *CassandraConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("cassandra: "+format, args...)) }
	if len(c.Hosts) == 0 {
		bad("cassandra.hosts must name at least one node")
	}
	for _, h := range c.Hosts {
		if strings.TrimSpace(h) == "" {
			bad("cassandra.hosts has an empty entry")
		} else if strings.Contains(h, ":") && net.ParseIP(h) == nil { // host:port or [v6]:port
			if _, port, err := net.SplitHostPort(h); err != nil {
				bad("cassandra.hosts entry %q: %v", h, err)
			} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				bad("cassandra.hosts entry %q: bad port", h)
			}
		}
	}
	if c.Port < 1 || c.Port > 65535 {
		bad("cassandra.port must be 1..65535, got %d", c.Port)
	}
	if !keyspaceRE.MatchString(c.Keyspace) {
		bad("cassandra.keyspace %q must be 1-48 lowercase letters, digits or _, starting with a letter", c.Keyspace)
	}
	if cons, err := gocql.ParseConsistencyWrapper(c.Consistency); err != nil || cons == gocql.Any {
		bad("cassandra.consistency %q must be one of ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, EACH_QUORUM, LOCAL_ONE", c.Consistency)
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > 15 {
		bad("cassandra.replication-factor must be 1..15, got %d", c.ReplicationFactor)
	}
	if c.BucketWidth < time.Minute || c.BucketWidth > 8760*time.Hour || c.BucketWidth%time.Millisecond != 0 {
		bad("cassandra.bucket-width must be whole milliseconds between 1m and 8760h, got %s", c.BucketWidth)
	}
	if c.Password != "" && c.PasswordFile != "" {
		bad("set cassandra.password or cassandra.password-file, not both")
	}
	if (c.Username == "") != (c.Password == "" && c.PasswordFile == "") {
		bad("set both cassandra.username and cassandra.password(-file), or neither")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("set both cassandra.tls-cert-file and cassandra.tls-key-file, or neither")
	}
	if c.Timeout <= 0 {
		bad("cassandra.timeout must be > 0")
	}
	if c.ConnectTimeout <= 0 {
		bad("cassandra.connect-timeout must be > 0")
	}
	if c.NumConns < 1 || c.NumConns > 64 {
		bad("cassandra.num-conns must be 1..64, got %d", c.NumConns)
	}
	if c.WriteConcurrency < 1 || c.WriteConcurrency > 4096 {
		bad("cassandra.write-concurrency must be 1..4096, got %d", c.WriteConcurrency)
	}
	return errors.Join(errs...)
}

// readPasswordFile sets Password from PasswordFile, if set.
func (c *CassandraConfig) readPasswordFile() error {
	if c.PasswordFile == "" {
		return nil
	}
	p, err := config.ReadSecretFile(c.PasswordFile)
	if err != nil {
		return fmt.Errorf("cassandra: cassandra.password-file: %w", err)
	}
	c.Password = p
	return nil
}

// cluster builds the driver configuration, without a keyspace.
func (c *CassandraConfig) cluster(logger *zap.Logger) *gocql.ClusterConfig {
	cl := gocql.NewCluster(c.Hosts...)
	cl.Port = c.Port
	cl.Consistency = gocql.ParseConsistency(c.Consistency)
	cl.SerialConsistency = gocql.LocalSerial
	cl.Timeout = c.Timeout
	cl.WriteTimeout = c.Timeout
	cl.ConnectTimeout = c.ConnectTimeout
	cl.NumConns = c.NumConns
	cl.ProtoVersion = 4
	// Retries apply to statements marked idempotent; LWTs opt out (RetryPolicy(nil)).
	cl.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: 3, Min: 50 * time.Millisecond, Max: time.Second}
	cl.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{MaxRetries: 10, InitialInterval: 100 * time.Millisecond, MaxInterval: 10 * time.Second}
	fallback := gocql.RoundRobinHostPolicy()
	if c.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(c.LocalDC)
	}
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback, gocql.ShuffleReplicas())
	if l, err := zap.NewStdLogAt(logger.Named("gocql"), zap.WarnLevel); err == nil {
		cl.Logger = l
	}
	if c.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: c.Username, Password: c.Password}
	}
	if t := c.TLS; t.Enabled || t.CAFile != "" || t.CertFile != "" {
		cl.SslOpts = &gocql.SslOptions{
			Config:                 &tls.Config{MinVersion: tls.VersionTLS12},
			CaPath:                 t.CAFile,
			CertPath:               t.CertFile,
			KeyPath:                t.KeyFile,
			EnableHostVerification: !t.InsecureSkipVerify,
		}
	}
	return cl
}
