package store

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/config"
	"github.com/natter-chat/natter/pkg/protocol"
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

// CassandraStore is the production Store on Apache Cassandra (4.0 or later). The
// schema and the reasons for it are in cassandra_migrations.go. Every statement is
// a constant string, so the driver prepares each once and routes it to a replica
// of its partition (token-aware); statements that can be replayed safely are
// marked idempotent and retried with backoff.
type CassandraStore struct {
	sess   *gocql.Session
	cfg    CassandraConfig
	log    *zap.Logger
	width  int64         // BucketWidth in ms
	writes chan struct{} // semaphore: WriteConcurrency slots shared by all writers

	// mu guards known: the bucket index ranges this store has written successfully,
	// so a steady stream of messages into the same buckets does not rewrite the index.
	// Dropping entries is always safe (it only costs a redundant write).
	mu    sync.Mutex
	known map[indexKey]seqRange
}

var _ Store = (*CassandraStore)(nil)

// seqBlock is how many consecutive seqs share a block of the bucket index. Part of
// the on-disk format: never change it.
const seqBlock = 256

// maxKnownIndex bounds CassandraStore.known; past it the cache starts over.
const maxKnownIndex = 1 << 16

type indexKey struct {
	chat          string
	block, bucket int64
}

type seqRange struct{ lo, hi int64 }

// Statements. Constant strings: gocql prepares each once per node.
const (
	// TTL 0 is none; an expiring message's rows carry its TTL (cassandra_retention.go).
	cqlInsertMessage = `INSERT INTO messages (chat_id, bucket, seq, message_id, sender_id, content, message_type, ts, reply_to, ref_id, meta, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?`
	cqlIndexMin    = `UPDATE chat_buckets USING TIMESTAMP ? SET min_seq = ? WHERE chat_id = ? AND block = ? AND bucket = ?`
	cqlIndexMax    = `UPDATE chat_buckets USING TIMESTAMP ? SET max_seq = ? WHERE chat_id = ? AND block = ? AND bucket = ?`
	cqlInsertMsgID = `INSERT INTO message_ids (chat_id, message_id, seq, bucket) VALUES (?, ?, ?, ?) USING TTL ?`
	// The chat's last seq and time, and its last message that is not an operation,
	// are registers; when the batch's newest message is not an operation, one
	// statement sets both, and it can also raise the newest index row's max_seq,
	// which has the same timestamp.
	cqlSetLastSeq       = `UPDATE chat_buckets USING TIMESTAMP ? SET last_seq = ?, last_ts = ? WHERE chat_id = ?`
	cqlSetLastSeqAndMax = `UPDATE chat_buckets USING TIMESTAMP ? SET last_seq = ?, last_ts = ?, max_seq = ?
		WHERE chat_id = ? AND block = ? AND bucket = ?`
	cqlSetLastAll       = `UPDATE chat_buckets USING TIMESTAMP ? SET last_seq = ?, last_ts = ?, last_message = ? WHERE chat_id = ?`
	cqlSetLastAllAndMax = `UPDATE chat_buckets USING TIMESTAMP ? SET last_seq = ?, last_ts = ?, last_message = ?, max_seq = ?
		WHERE chat_id = ? AND block = ? AND bucket = ?`
	cqlSetLastMessage = `UPDATE chat_buckets USING TIMESTAMP ? SET last_message = ? WHERE chat_id = ?`
	cqlAddPending     = `UPDATE chat_buckets SET pending = pending + ? WHERE chat_id = ?`
	cqlSetChatName    = `UPDATE chat_buckets SET chat_name = ? WHERE chat_id = ?`
	cqlSetReadBoth    = `UPDATE read_state USING TIMESTAMP ? SET delivered_seq = ?, read_seq = ? WHERE user_id = ? AND chat_id = ?`
	cqlSetDelivered   = `UPDATE read_state USING TIMESTAMP ? SET delivered_seq = ? WHERE user_id = ? AND chat_id = ?`
	cqlSetRead        = `UPDATE read_state USING TIMESTAMP ? SET read_seq = ? WHERE user_id = ? AND chat_id = ?`

	// Operations (see message_ops in cassandra_migrations.go).
	cqlOpEdit   = `INSERT INTO message_ops (chat_id, message_id, kind, emoji, user_id, seq, content) VALUES (?, ?, 'edit', '', ?, ?, ?) USING TTL ?`
	cqlOpDelete = `INSERT INTO message_ops (chat_id, message_id, kind, emoji, user_id, seq) VALUES (?, ?, 'delete', '', ?, ?)`
	cqlOpReact  = `UPDATE message_ops USING TIMESTAMP ? AND TTL ? SET present = ?, rseq = ?
		WHERE chat_id = ? AND message_id = ? AND kind = 'react' AND emoji = ? AND user_id = ? AND seq = 0`
	// The mark carries its operation's TTL: on an expiring message it must not
	// outlive the row (a row of only has_ops would stay behind).
	cqlMarkOps = `UPDATE messages USING TTL ? SET has_ops = true WHERE chat_id = ? AND bucket = ? AND seq = ?`
	// cqlMarkDeleted also drops the deleted text (reads hide it in any case).
	cqlMarkDeleted = `UPDATE messages USING TTL ? SET has_ops = true, content = null, meta = null WHERE chat_id = ? AND bucket = ? AND seq = ?`
	cqlFindMessage = `SELECT seq, bucket FROM message_ids WHERE chat_id = ? AND message_id = ?`
	cqlMessageOps  = `SELECT kind, user_id, emoji, seq, content, present, rseq FROM message_ops WHERE chat_id = ? AND message_id = ?`

	cqlIndexBackward = `SELECT block, bucket, min_seq, max_seq, pending FROM chat_buckets WHERE chat_id = ? AND block <= ?`
	cqlIndexForward  = `SELECT block, bucket, min_seq, max_seq, pending FROM chat_buckets WHERE chat_id = ? AND block >= ?
		ORDER BY block ASC, bucket ASC`
	cqlMsgCols         = `seq, message_id, sender_id, content, message_type, ts, reply_to, ref_id, meta, has_ops, expires_at`
	cqlMessagesBackwrd = `SELECT ` + cqlMsgCols + ` FROM messages WHERE chat_id = ? AND bucket = ? AND seq >= ? AND seq <= ? LIMIT ?`
	cqlMessagesForward = `SELECT ` + cqlMsgCols + ` FROM messages WHERE chat_id = ? AND bucket = ? AND seq >= ? AND seq <= ?
		ORDER BY seq ASC LIMIT ?`
	cqlLastSeq    = `SELECT last_seq FROM chat_buckets WHERE chat_id = ? LIMIT 1`
	cqlLastState  = `SELECT last_seq, last_ts, last_message, chat_name FROM chat_buckets WHERE chat_id = ? LIMIT 1`
	cqlMessageSeq = `SELECT seq FROM message_ids WHERE chat_id = ? AND message_id = ? LIMIT 1`

	cqlCreateChat   = `INSERT INTO chats (chat_id, kind, name, created_by, created_at, encrypted) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`
	cqlInsertMember = `INSERT INTO chats (chat_id, user_id, role, joined_at) VALUES (?, ?, ?, ?)`
	cqlUpdateRole   = `UPDATE chats SET role = ? WHERE chat_id = ? AND user_id = ?`
	cqlRenameChat   = `UPDATE chats SET name = ? WHERE chat_id = ?`
	cqlDeleteMember = `DELETE FROM chats WHERE chat_id = ? AND user_id = ?`
	cqlGetChat      = `SELECT kind, name, created_by, created_at, message_ttl, encrypted FROM chats WHERE chat_id = ? LIMIT 1`
	cqlMembers      = `SELECT user_id, role, joined_at FROM chats WHERE chat_id = ?`
	cqlGetMember    = `SELECT role, joined_at FROM chats WHERE chat_id = ? AND user_id = ?`
	cqlAddUserChat  = `INSERT INTO user_chats (user_id, chat_id, kind, name, created_by, created_at, encrypted) VALUES (?, ?, ?, ?, ?, ?, ?)`
	cqlDelUserChat  = `DELETE FROM user_chats WHERE user_id = ? AND chat_id = ?`
	cqlUserChats    = `SELECT chat_id, kind, name, created_by, created_at, encrypted FROM user_chats WHERE user_id = ?`
	cqlUserReads    = `SELECT chat_id, read_seq FROM read_state WHERE user_id = ?`
	cqlGetReadState = `SELECT delivered_seq, read_seq FROM read_state WHERE user_id = ? AND chat_id = ?`
	cqlSetMute      = `INSERT INTO mutes (chat_id, user_id, until) VALUES (?, ?, ?)`
	cqlDeleteMute   = `DELETE FROM mutes WHERE chat_id = ? AND user_id = ?`
	cqlGetMute      = `SELECT until FROM mutes WHERE chat_id = ? AND user_id = ?`
	cqlPing         = `SELECT release_version FROM system.local`
)

// OpenCassandra connects to the cluster in cfg and checks that cfg.Keyspace holds
// the schema version this binary needs. It does not create or migrate anything: if
// the keyspace is missing or behind, the error says to run `natter migrate` (see
// MigrateCassandra). The store must be closed.
func OpenCassandra(ctx context.Context, cfg CassandraConfig, logger *zap.Logger) (*CassandraStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.readPasswordFile(); err != nil {
		return nil, err
	}
	log := logger.With(zap.String("store", "cassandra"), zap.String("keyspace", cfg.Keyspace))
	cluster := cfg.cluster(log)
	cluster.Keyspace = cfg.Keyspace
	sess, err := cluster.CreateSession()
	if err != nil {
		return nil, explainConnectError(ctx, cfg, log, err)
	}
	if err := checkCassandraSchema(ctx, sess, cfg.Keyspace); err != nil {
		sess.Close()
		return nil, err
	}
	log.Info("cassandra store open", zap.Strings("hosts", cfg.Hosts), zap.String("consistency", cfg.Consistency),
		zap.String("local_dc", cfg.LocalDC), zap.Duration("bucket_width", cfg.BucketWidth))
	return &CassandraStore{
		sess:   sess,
		cfg:    cfg,
		log:    log,
		width:  cfg.BucketWidth.Milliseconds(),
		writes: make(chan struct{}, cfg.WriteConcurrency),
		known:  map[indexKey]seqRange{},
	}, nil
}

// explainConnectError turns a failed session into advice: is the cluster down, or
// is the keyspace missing?
func explainConnectError(ctx context.Context, cfg CassandraConfig, log *zap.Logger, err error) error {
	down := fmt.Errorf("cassandra: connect to %s: %w (is Cassandra running? check cassandra.hosts and cassandra.port)",
		strings.Join(cfg.Hosts, ","), err)
	if strings.Contains(err.Error(), "unable to connect to initial hosts") {
		return down // no node answered: a second session would only wait as long again
	}
	probe, perr := cfg.cluster(log).CreateSession()
	if perr != nil {
		return down
	}
	defer probe.Close()
	if exists, kerr := keyspaceExists(ctx, probe, cfg.Keyspace); kerr == nil && !exists {
		return fmt.Errorf("cassandra: keyspace %s does not exist: run `natter migrate` (or set cassandra.auto-migrate)", cfg.Keyspace)
	}
	return fmt.Errorf("cassandra: open keyspace %s: %w", cfg.Keyspace, err)
}

// bucketOf is the start (ms since the epoch) of the bucket holding timestamp ts (ms).
func (s *CassandraStore) bucketOf(ts int64) int64 {
	b := ts / s.width
	if ts%s.width < 0 {
		b-- // floor, for timestamps before 1970
	}
	return b * s.width
}

// writeOp is one write: a statement, or an unlogged batch of statements on one
// partition. done, if set, runs after it succeeded.
type writeOp struct {
	what, chat string // for errors
	entries    []gocql.BatchEntry
	serverTime bool // membership: the coordinator's clock, like an LWT's
	done       func()
}

func entry(stmt string, args ...any) gocql.BatchEntry {
	return gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true}
}

// Batches of messages on one partition are cut at this many rows or bytes. Single
// partition batches are applied as one mutation and are exempt from Cassandra's
// batch size warnings, but a mutation must stay well under the commit log segment.
const (
	maxBatchRows  = 100
	maxBatchBytes = 512 << 10
)

// AppendMessages implements Store. It writes the batch with up to WriteConcurrency
// requests in flight: per (chat, bucket) an unlogged single-partition batch of
// message rows, per message its message_ids row, per chat the bucket index rows
// that are not known to be written yet and the last message, per sender the
// raised watermarks, and per operation its message_ops row and the mark on its
// target (see resolveTargets); the small writes are packed together (see pack).
// Every write is an idempotent upsert (registers only move one way), so a retried
// or concurrent batch converges to the same state; a message stored twice is
// overwritten with itself. On error some of the batch may be stored: the caller
// retries the whole batch.
func (s *CassandraStore) AppendMessages(ctx context.Context, msgs []protocol.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	msgs, err := s.withoutStoredIDs(ctx, msgs)
	if err != nil {
		return fmt.Errorf("cassandra: append %d messages: %w", len(msgs), err)
	}
	if len(msgs) == 0 {
		return nil
	}
	type chatPlan struct {
		last    *protocol.Message // highest seq
		lastMsg *protocol.Message // highest seq that is not an operation
		buckets map[int64][]*protocol.Message
		index   map[indexKey]seqRange
		pending []string
	}
	chats := map[string]*chatPlan{}
	senders := map[[2]string]int64{} // (sender, chat) -> highest seq
	var opMsgs []*protocol.Message
	for i := range msgs {
		m := &msgs[i]
		if m.ChatID == "" {
			return fmt.Errorf("cassandra: append: message %q has no chat ID", m.MessageID)
		}
		if m.Seq > math.MaxInt64 {
			return fmt.Errorf("cassandra: append %s/%d: seq out of range", m.ChatID, m.Seq)
		}
		cp := chats[m.ChatID]
		if cp == nil {
			cp = &chatPlan{buckets: map[int64][]*protocol.Message{}, index: map[indexKey]seqRange{}}
			chats[m.ChatID] = cp
		}
		if cp.last == nil || m.Seq > cp.last.Seq {
			cp.last = m
		}
		if !protocol.IsOperation(m.MessageType) && (cp.lastMsg == nil || m.Seq > cp.lastMsg.Seq) {
			cp.lastMsg = m
		}
		if opTarget(m) != "" {
			opMsgs = append(opMsgs, m)
		}
		bucket := s.bucketOf(m.Timestamp)
		cp.buckets[bucket] = append(cp.buckets[bucket], m)
		seq := int64(m.Seq)
		k := indexKey{chat: m.ChatID, block: seq / seqBlock, bucket: bucket}
		if r, ok := cp.index[k]; ok {
			cp.index[k] = seqRange{min(r.lo, seq), max(r.hi, seq)}
		} else {
			cp.index[k] = seqRange{seq, seq}
		}
		if m.SenderID != "" && !protocol.IsKeyEvent(m) { // a key event is not one's own message
			sk := [2]string{m.SenderID, m.ChatID}
			senders[sk] = max(senders[sk], seq)
		}
	}

	ops := make([]writeOp, 0, 2*len(msgs)+3*len(chats)+len(senders)+2*len(opMsgs))
	var targets map[msgRef][]msgLoc
	if len(opMsgs) > 0 {
		var err error
		targets, err = s.resolveTargets(ctx, msgs, opMsgs)
		if err != nil {
			return fmt.Errorf("cassandra: append %d messages: %w", len(msgs), err)
		}
		marks := map[msgLoc]bool{}  // target row -> also purge its text
		markTTL := map[msgLoc]int{} // target row -> the longest TTL of its operations (0: none)
		for _, m := range opMsgs {
			ops = append(ops, writeOp{what: "operation", chat: m.ChatID, entries: []gocql.BatchEntry{opEntry(m)}})
			ref := msgRef{m.ChatID, m.RefID}
			locs, found := targets[ref]
			if !found {
				cp := chats[m.ChatID]
				if !slices.Contains(cp.pending, m.RefID) {
					cp.pending = append(cp.pending, m.RefID)
				}
				continue
			}
			for _, l := range locs {
				if l.seq < int64(m.Seq) { // an operation applies to earlier messages only
					marks[l] = marks[l] || m.MessageType == protocol.TypeDelete
					if prev, seen := markTTL[l]; seen {
						markTTL[l] = longerTTL(prev, ttlOf(m))
					} else {
						markTTL[l] = ttlOf(m)
					}
				}
			}
		}
		for l, purge := range marks {
			stmt := cqlMarkOps
			if purge {
				stmt = cqlMarkDeleted
			}
			ops = append(ops, writeOp{what: "operation target", chat: l.chat, entries: []gocql.BatchEntry{
				entry(stmt, markTTL[l], l.chat, l.bucket, l.seq)}})
		}
	}
	for chatID, cp := range chats {
		op, err := s.indexOp(chatID, cp.index, cp.last, cp.lastMsg, cp.pending)
		if err != nil {
			return fmt.Errorf("cassandra: append %s: %w", chatID, err)
		}
		ops = append(ops, op)
		for bucket, ms := range cp.buckets {
			var entries []gocql.BatchEntry
			size := 0
			for _, m := range ms {
				entries = append(entries, entry(cqlInsertMessage, m.ChatID, bucket, int64(m.Seq), m.MessageID, m.SenderID,
					m.Content, m.MessageType, m.Timestamp, unsetEmpty(m.ReplyTo), unsetEmpty(m.RefID), unsetBlob(m.Meta),
					unsetZero(m.ExpiresAt), ttlOf(m)))
				size += len(m.Content) + len(m.Meta) + 128
				if len(entries) == maxBatchRows || size >= maxBatchBytes {
					ops = append(ops, writeOp{what: "messages", chat: chatID, entries: entries})
					entries, size = nil, 0
				}
			}
			if len(entries) > 0 {
				ops = append(ops, writeOp{what: "messages", chat: chatID, entries: entries})
			}
			for _, m := range ms {
				if m.MessageID != "" {
					ops = append(ops, writeOp{what: "message id", chat: chatID, entries: []gocql.BatchEntry{
						entry(cqlInsertMsgID, chatID, m.MessageID, int64(m.Seq), bucket, ttlOf(m))}})
				}
			}
		}
	}
	ciphertexts, err := s.encryptedTargets(ctx, msgs, targets) // cassandra_search.go
	if err != nil {
		return fmt.Errorf("cassandra: append: %w", err)
	}
	ops = append(ops, searchOps(s.bucketOf, msgs, targets, ciphertexts)...)
	// One's own message counts as delivered and read.
	bySender := map[string][]gocql.BatchEntry{}
	for k, seq := range senders {
		bySender[k[0]] = append(bySender[k[0]], entry(cqlSetReadBoth, seq, seq, seq, k[0], k[1]))
	}
	for sender, entries := range bySender {
		ops = append(ops, writeOp{what: "read state of sender " + sender, chat: entries[0].Args[4].(string), entries: entries})
	}
	if err := s.run(ctx, pack(ops)); err != nil {
		return fmt.Errorf("cassandra: append %d messages: %w", len(msgs), err)
	}
	return nil
}

// indexOp returns the writes of one chat's partition of chat_buckets: the last
// seq and time (from last), the last message that is not an operation (lastMsg,
// if any), the bucket index rows not known to be written already, and the
// operation targets not stored yet (pending). In the steady state of a busy chat
// that is one statement, which also raises the newest index row's max_seq.
func (s *CassandraStore) indexOp(chatID string, index map[indexKey]seqRange, last, lastMsg *protocol.Message, pending []string) (writeOp, error) {
	seq := int64(last.Seq)
	var body []byte
	if lastMsg != nil {
		var err error
		if body, err = json.Marshal(lastMsg); err != nil {
			return writeOp{}, fmt.Errorf("last message %d: %w", lastMsg.Seq, err)
		}
	}
	// An expiring last message is written on its own, with its TTL (it must not
	// take last_seq with it).
	together := lastMsg != nil && lastMsg.Seq == last.Seq && lastMsg.ExpiresAt == 0 // one timestamp
	entries := []gocql.BatchEntry{entry(cqlSetLastSeq, seq, seq, last.Timestamp, chatID)}
	if together {
		entries[0] = entry(cqlSetLastAll, seq, seq, last.Timestamp, body, chatID)
	} else if lastMsg != nil {
		entries = append(entries, lastMessageEntry(lastMsg, body, chatID)) // cassandra_retention.go
	}
	if len(pending) > 0 {
		entries = append(entries, entry(cqlAddPending, pending, chatID))
	}
	var written []indexKey
	s.mu.Lock()
	for k, r := range index {
		have, ok := s.known[k]
		needMin, needMax := !ok || r.lo < have.lo, !ok || r.hi > have.hi
		if !needMin && !needMax {
			continue
		}
		written = append(written, k)
		// min_seq: a min register (the lower the seq, the higher the timestamp,
		// within 1..seqBlock); max_seq: a max register (timestamp = seq).
		if needMin {
			entries = append(entries, entry(cqlIndexMin, (k.block+1)*seqBlock-r.lo, r.lo, chatID, k.block, k.bucket))
		}
		switch {
		case !needMax:
		case r.hi == seq && together:
			entries[0] = entry(cqlSetLastAllAndMax, seq, seq, last.Timestamp, body, seq, chatID, k.block, k.bucket)
		case r.hi == seq:
			entries[0] = entry(cqlSetLastSeqAndMax, seq, seq, last.Timestamp, seq, chatID, k.block, k.bucket)
		default:
			entries = append(entries, entry(cqlIndexMax, r.hi, r.hi, chatID, k.block, k.bucket))
		}
	}
	s.mu.Unlock()
	if len(written) == 0 {
		return writeOp{what: "last message", chat: chatID, entries: entries}, nil
	}
	return writeOp{what: "bucket index and last message", chat: chatID, entries: entries, done: func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.known) > maxKnownIndex {
			clear(s.known)
		}
		for _, k := range written {
			r := index[k]
			if have, ok := s.known[k]; ok {
				r = seqRange{min(r.lo, have.lo), max(r.hi, have.hi)}
			}
			s.known[k] = r
		}
	}}, nil
}

// msgRef names a message by its ID, as an operation references it.
type msgRef struct{ chat, id string }

// msgLoc is where a message row is.
type msgLoc struct {
	chat        string
	bucket, seq int64
}

// opTarget returns the messageID that operation m can change, or "" if m is not an
// operation or changes nothing (no RefID, a reaction naming no emoji).
func opTarget(m *protocol.Message) string {
	if !protocol.IsOperation(m.MessageType) || m.RefID == "" {
		return ""
	}
	if m.MessageType == protocol.TypeReact {
		if _, ok := protocol.ParseReaction(m.Meta); !ok {
			return ""
		}
	}
	return m.RefID
}

// opEntry is operation m's message_ops write. A reaction is a register per (emoji,
// user): present and rseq are written with timestamp = seq, so the event with the
// highest seq wins in any arrival order.
func opEntry(m *protocol.Message) gocql.BatchEntry {
	seq := int64(m.Seq)
	switch m.MessageType {
	case protocol.TypeEdit:
		return entry(cqlOpEdit, m.ChatID, m.RefID, m.SenderID, seq, m.Content, ttlOf(m))
	case protocol.TypeDelete:
		return entry(cqlOpDelete, m.ChatID, m.RefID, m.SenderID, seq)
	}
	ev, _ := protocol.ParseReaction(m.Meta)
	return entry(cqlOpReact, seq, ttlOf(m), !ev.Remove, seq, m.ChatID, m.RefID, ev.Emoji, m.SenderID)
}

// targetLookups bounds the message_ids reads of one AppendMessages call.
const targetLookups = 32

// resolveTargets finds the rows of the messages that opMsgs reference: in msgs
// itself, else through message_ids. A reference missing from the result is not
// stored (yet).
func (s *CassandraStore) resolveTargets(ctx context.Context, msgs []protocol.Message, opMsgs []*protocol.Message) (map[msgRef][]msgLoc, error) {
	local := map[msgRef][]msgLoc{}
	for i := range msgs {
		m := &msgs[i]
		if protocol.Referable(m.MessageType) && m.MessageID != "" {
			ref := msgRef{m.ChatID, m.MessageID}
			local[ref] = append(local[ref], msgLoc{m.ChatID, s.bucketOf(m.Timestamp), int64(m.Seq)})
		}
	}
	out := map[msgRef][]msgLoc{}
	var lookup []msgRef
	for _, m := range opMsgs {
		ref := msgRef{m.ChatID, m.RefID}
		if _, done := out[ref]; done || slices.Contains(lookup, ref) {
			continue
		}
		if locs, ok := local[ref]; ok {
			out[ref] = locs
		} else {
			lookup = append(lookup, ref)
		}
	}
	found := make([][]msgLoc, len(lookup))
	errs := make([]error, len(lookup))
	sem := make(chan struct{}, targetLookups)
	var wg sync.WaitGroup
	for i, ref := range lookup {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			iter := s.sess.Query(cqlFindMessage, ref.chat, ref.id).WithContext(ctx).Idempotent(true).Iter()
			var seq int64
			var bucket *int64
			for iter.Scan(&seq, &bucket) {
				if bucket != nil {
					found[i] = append(found[i], msgLoc{ref.chat, *bucket, seq})
				}
			}
			if err := iter.Close(); err != nil {
				errs[i] = fmt.Errorf("find message %s/%s: %w", ref.chat, ref.id, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, ref := range lookup {
		if len(found[i]) > 0 {
			out[ref] = found[i]
		}
	}
	return out, nil
}

// opRow is one row of message_ops; for a reaction, seq is the seq of the event
// that set it.
type opRow struct {
	kind, user, emoji, content string
	seq                        int64
	present                    bool
}

// msgOps are the operations stored against one messageID.
type msgOps []opRow

func (s *CassandraStore) readOps(ctx context.Context, chatID, messageID string) (msgOps, error) {
	iter := s.sess.Query(cqlMessageOps, chatID, messageID).WithContext(ctx).Idempotent(true).Iter()
	var out msgOps
	for {
		var r opRow
		var content *string
		var present *bool
		var rseq *int64
		if !iter.Scan(&r.kind, &r.user, &r.emoji, &r.seq, &content, &present, &rseq) {
			break
		}
		if content != nil {
			r.content = *content
		}
		if r.kind == "react" {
			if present == nil || rseq == nil {
				continue
			}
			r.present, r.seq = *present, *rseq
		}
		out = append(out, r)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("operations on %s/%s: %w", chatID, messageID, err)
	}
	return out, nil
}

// deleted reports whether any delete event references the message.
func (o msgOps) deleted() bool {
	return slices.ContainsFunc(o, func(r opRow) bool { return r.kind == "delete" })
}

// apply sets m's current state from the operations sequenced after it: a delete
// makes it a tombstone; otherwise its sender's edit with the highest seq gives the
// content, and, if withReactions, the present reactions give Reactions (per emoji,
// ordered by the earliest event that set a present one, Me for viewer). StateSeq
// is the highest seq of those operations.
func (o msgOps) apply(m *protocol.Message, viewer string, withReactions bool) {
	if !protocol.Referable(m.MessageType) {
		return
	}
	type agg struct {
		r     protocol.Reaction
		first int64
	}
	var state, editSeq int64
	var deleted bool
	var content string
	var reactions []agg
	for _, r := range o {
		if r.seq <= int64(m.Seq) {
			continue
		}
		state = max(state, r.seq)
		switch r.kind {
		case "delete":
			deleted = true
		case "edit":
			if r.user == m.SenderID && r.seq > editSeq {
				editSeq, content = r.seq, r.content
			}
		case "react":
			if !r.present {
				continue
			}
			i := slices.IndexFunc(reactions, func(a agg) bool { return a.r.Emoji == r.emoji })
			if i < 0 {
				reactions = append(reactions, agg{r: protocol.Reaction{Emoji: r.emoji}, first: r.seq})
				i = len(reactions) - 1
			}
			a := &reactions[i]
			a.r.Count++
			a.r.Me = a.r.Me || (viewer != "" && r.user == viewer)
			a.first = min(a.first, r.seq)
		}
	}
	m.StateSeq = uint64(state)
	switch {
	case deleted:
		m.Deleted, m.Edited, m.Content, m.Meta, m.Reactions = true, false, "", nil, nil
		return
	case editSeq > 0:
		m.Edited, m.Content = true, content
	}
	if withReactions && len(reactions) > 0 {
		slices.SortFunc(reactions, func(a, b agg) int {
			if c := cmp.Compare(a.first, b.first); c != 0 {
				return c
			}
			return strings.Compare(a.r.Emoji, b.r.Emoji)
		})
		m.Reactions = make([]protocol.Reaction, len(reactions))
		for i, a := range reactions {
			m.Reactions[i] = a.r
		}
	}
}

// stateReads bounds the message_ops reads of one History call.
const stateReads = 16

// currentState returns page in its current state (see AppendMessages in store.go):
// the operations of messages marked has_ops or named in pending are read and
// applied, and the text of an edit event whose target was deleted is dropped.
func (s *CassandraStore) currentState(ctx context.Context, chatID string, page []storedMsg, pending []string, viewer string) ([]protocol.Message, error) {
	var ids []string
	need := func(id string) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, m := range page {
		if protocol.Referable(m.MessageType) && (m.hasOps || slices.Contains(pending, m.MessageID)) {
			need(m.MessageID)
		}
		if m.MessageType == protocol.TypeEdit && m.RefID != "" {
			need(m.RefID)
		}
	}
	ops := make([]msgOps, len(ids))
	errs := make([]error, len(ids))
	sem := make(chan struct{}, stateReads)
	var wg sync.WaitGroup
	for i, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ops[i], errs[i] = s.readOps(ctx, chatID, id)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]protocol.Message, len(page))
	for i, sm := range page {
		m := sm.Message
		if j := slices.Index(ids, m.MessageID); j >= 0 {
			ops[j].apply(&m, viewer, true)
		}
		if m.MessageType == protocol.TypeEdit && m.RefID != "" {
			if j := slices.Index(ids, m.RefID); j >= 0 && ops[j].deleted() {
				m.Content = "" // a deleted message's edits keep no text
			}
		}
		out[i] = m
	}
	return out, nil
}

// Small writes are packed into unlogged batches that span partitions: up to
// packOps ops of at most packSmall statements each. Every op is on one partition,
// so a batch spans at most packOps partitions (Cassandra warns above 10). A batch
// costs one request instead of one per op, which is most of the cost of a small
// write; each partition's part is still applied atomically, and the coordinator
// forwards the parts it does not own to their replicas.
const (
	packSmall = 4
	packOps   = 10
)

// pack merges small ops into multi-partition batches, never splitting an op.
// Larger ops (single-partition batches of messages) stay as they are.
func pack(ops []writeOp) []writeOp {
	out := ops[:0:0]
	var cur *writeOp
	n := 0 // ops in cur
	for _, op := range ops {
		if len(op.entries) > packSmall || op.serverTime {
			out = append(out, op)
			continue
		}
		if cur != nil && n == packOps {
			out = append(out, *cur)
			cur = nil
		}
		if cur == nil {
			cur, n = &writeOp{what: "small writes", chat: op.chat}, 0
		}
		if cur.chat != op.chat {
			cur.chat = "(several)"
		}
		cur.entries = append(cur.entries, op.entries...)
		n++
		if op.done != nil {
			prev, done := cur.done, op.done
			cur.done = func() {
				if prev != nil {
					prev()
				}
				done()
			}
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

func unsetEmpty(v string) any {
	if v == "" {
		return gocql.UnsetValue // no cell at all, rather than an empty one
	}
	return v
}

func unsetBlob(b json.RawMessage) any {
	if len(b) == 0 {
		return gocql.UnsetValue
	}
	return []byte(b)
}

// run executes ops with at most WriteConcurrency in flight (shared by every caller)
// and returns the first error, after cancelling the rest.
func (s *CassandraStore) run(ctx context.Context, ops []writeOp) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	next := make(chan *writeOp)
	workers := min(len(ops), cap(s.writes))
	for range workers {
		wg.Go(func() {
			for op := range next {
				if err := s.exec(ctx, op); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range ops {
		select {
		case s.writes <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		select {
		case next <- &ops[i]:
		case <-ctx.Done():
			<-s.writes
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// exec runs one op and frees its slot in s.writes.
func (s *CassandraStore) exec(ctx context.Context, op *writeOp) error {
	defer func() { <-s.writes }()
	if ctx.Err() != nil {
		return nil // the run is being cancelled; its cause is already recorded
	}
	var err error
	if len(op.entries) == 1 {
		e := op.entries[0]
		err = s.sess.Query(e.Stmt, e.Args...).WithContext(ctx).Idempotent(true).DefaultTimestamp(!op.serverTime).Exec()
	} else {
		b := s.sess.NewBatch(gocql.UnloggedBatch).WithContext(ctx).DefaultTimestamp(!op.serverTime)
		b.Entries = op.entries
		err = s.sess.ExecuteBatch(b)
	}
	if err != nil {
		return fmt.Errorf("%s of chat %s (%d statements): %w", op.what, op.chat, len(op.entries), err)
	}
	if op.done != nil {
		op.done()
	}
	return nil
}

// storedMsg is a message as read from its row.
type storedMsg struct {
	protocol.Message
	hasOps bool // operations reference it: read message_ops
}

// indexRow is one row of chat_buckets: seqs lo..hi of one block live in bucket.
type indexRow struct {
	bucket int64
	lo, hi int64
}

// History implements Store. It seeks the bucket index to the cursor's block and
// reads, block by block in the page's direction, only the buckets the index names
// for the seqs it still needs (see readBlock), so empty buckets are never read;
// then it brings the page to its current state (see currentState).
func (s *CassandraStore) History(ctx context.Context, chatID string, q HistoryQuery) ([]protocol.Message, error) {
	limit := clampLimit(q.Limit)
	fwd := q.Dir == Forward
	lo, hi := int64(0), int64(math.MaxInt64) // wanted seqs, inclusive
	switch {
	case fwd && q.After >= math.MaxInt64:
		return nil, nil
	case fwd:
		lo = int64(q.After) + 1
	case q.Before == 1:
		return nil, nil
	case q.Before > 0 && q.Before <= math.MaxInt64:
		hi = int64(q.Before) - 1
	}
	if chatID == "" {
		return nil, nil
	}
	stmt, from := cqlIndexBackward, hi/seqBlock
	if fwd {
		stmt, from = cqlIndexForward, lo/seqBlock
	}
	// A busy chat has a row or two per block, a sparse one up to one per message:
	// a page of about limit rows serves both without reading far ahead.
	pageSize := min(max(limit+16, 32), 2*seqBlock)
	iter := s.sess.Query(stmt, chatID, from).WithContext(ctx).Idempotent(true).PageSize(pageSize).Iter()
	var out []storedMsg
	var rows []indexRow
	block := int64(-1)
	var blk, bucket, mn, mx int64
	var pending []string // static: the same on every row
	flush := func() error {
		page, err := s.readBlock(ctx, chatID, fwd, block, rows, lo, hi, limit-len(out))
		out = append(out, page...)
		rows = rows[:0]
		return err
	}
	for len(out) < limit && iter.Scan(&blk, &bucket, &mn, &mx, &pending) {
		if blk != block && len(rows) > 0 {
			if err := flush(); err != nil {
				iter.Close()
				return nil, fmt.Errorf("cassandra: history %s: %w", chatID, err)
			}
			if len(out) >= limit {
				break
			}
		}
		block = blk
		if mn == 0 || mx == 0 {
			// Not expected (a row's first write sets both), but a null register can
			// only cost reads: take the row as covering its whole block.
			mn, mx = blk*seqBlock, blk*seqBlock+seqBlock-1
		}
		rows = append(rows, indexRow{bucket: bucket, lo: mn, hi: mx})
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: history %s: read bucket index: %w", chatID, err)
	}
	if len(out) < limit && len(rows) > 0 {
		if err := flush(); err != nil {
			return nil, fmt.Errorf("cassandra: history %s: %w", chatID, err)
		}
	}
	msgs, err := s.currentState(ctx, chatID, out, pending, q.Viewer)
	if err != nil {
		return nil, fmt.Errorf("cassandra: history %s: %w", chatID, err)
	}
	return msgs, nil
}

// maxWave bounds the bucket reads History sends at once for one block.
const maxWave = 16

// readBlock returns up to need messages of one seq block within [lo, hi], ordered
// in the page direction, from the buckets in rows (each with the exact seq range
// the block has in it). Buckets are read best-first (highest seqs for a backward
// page), in waves sized by how many seqs their ranges can still hold, until no
// unread bucket can hold a seq that would make the page. With timestamps that rise
// with seq the ranges do not overlap and this reads exactly the buckets the page
// spans; if a clock went backwards they overlap and the merge keeps it exact.
func (s *CassandraStore) readBlock(ctx context.Context, chatID string, fwd bool, block int64, rows []indexRow, lo, hi int64, need int) ([]storedMsg, error) {
	bLo, bHi := max(lo, block*seqBlock), min(hi, block*seqBlock+seqBlock-1)
	cands := make([]indexRow, 0, len(rows))
	for _, r := range rows {
		r.lo, r.hi = max(r.lo, bLo), min(r.hi, bHi)
		if r.lo <= r.hi {
			cands = append(cands, r)
		}
	}
	better := func(a, b int64) bool { return a > b } // a comes before b in the page
	if fwd {
		better = func(a, b int64) bool { return a < b }
		slices.SortFunc(cands, func(a, b indexRow) int { return cmp.Compare(a.lo, b.lo) })
	} else {
		slices.SortFunc(cands, func(a, b indexRow) int { return cmp.Compare(b.hi, a.hi) })
	}
	var got []storedMsg
	for i := 0; i < len(cands); {
		if len(got) >= need {
			edge := int64(got[need-1].Seq)
			if first := cands[i]; (fwd && first.lo > edge) || (!fwd && first.hi < edge) {
				break
			}
		}
		j, room := i, int64(need-len(got))
		for j < len(cands) && j-i < maxWave && (j == i || room > 0) {
			room -= cands[j].hi - cands[j].lo + 1
			j++
		}
		wave := make([][]storedMsg, j-i)
		errs := make([]error, j-i)
		var wg sync.WaitGroup
		for k := i; k < j; k++ {
			wg.Go(func() { wave[k-i], errs[k-i] = s.readBucket(ctx, chatID, fwd, cands[k], need) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for _, w := range wave {
			got = append(got, w...)
		}
		if j-i > 1 || i > 0 {
			slices.SortStableFunc(got, func(a, b storedMsg) int {
				if better(int64(a.Seq), int64(b.Seq)) {
					return -1
				}
				if a.Seq == b.Seq {
					return 0
				}
				return 1
			})
			// A message stored under two buckets (its timestamp changed between
			// retries) shows once.
			got = slices.CompactFunc(got, func(a, b storedMsg) bool { return a.Seq == b.Seq })
		}
		if len(got) > need {
			got = got[:need]
		}
		i = j
	}
	return got, nil
}

// readBucket reads up to limit messages of one bucket within r, in page order.
func (s *CassandraStore) readBucket(ctx context.Context, chatID string, fwd bool, r indexRow, limit int) ([]storedMsg, error) {
	stmt := cqlMessagesBackwrd
	if fwd {
		stmt = cqlMessagesForward
	}
	out := make([]storedMsg, 0, min(limit, int(r.hi-r.lo+1)))
	now := time.Now().UnixMilli()
	// Usually one query. Rows that expired but are still stored (their TTL is
	// rounded up to the second) are skipped, and the bucket is read on past them
	// for as many as were skipped.
	for lo, hi := r.lo, r.hi; lo <= hi; {
		want := limit - len(out)
		iter := s.sess.Query(stmt, chatID, r.bucket, lo, hi, want).WithContext(ctx).Idempotent(true).Iter()
		rows, edge := 0, int64(0)
		for {
			m := storedMsg{Message: protocol.Message{ChatID: chatID}}
			var seq int64
			var meta []byte
			if !iter.Scan(&seq, &m.MessageID, &m.SenderID, &m.Content, &m.MessageType, &m.Timestamp, &m.ReplyTo, &m.RefID, &meta, &m.hasOps, &m.ExpiresAt) {
				break
			}
			rows, edge = rows+1, seq
			if m.Expired(now) || m.MessageType == "" {
				// Expired: its TTL removes the row within the second. No type: what an
				// expired row's later has_ops mark left (cassandra_retention.go).
				continue
			}
			m.Seq = uint64(seq)
			if len(meta) > 0 {
				m.Meta = json.RawMessage(meta)
			}
			out = append(out, m)
		}
		if err := iter.Close(); err != nil {
			return nil, fmt.Errorf("read bucket %s: %w", time.UnixMilli(r.bucket).UTC().Format(time.RFC3339), err)
		}
		if rows < want || len(out) >= limit {
			break
		}
		if fwd {
			lo = edge + 1
		} else {
			hi = edge - 1
		}
	}
	return out, nil
}

// LastSeq implements Store.
func (s *CassandraStore) LastSeq(ctx context.Context, chatID string) (uint64, error) {
	if chatID == "" {
		return 0, nil
	}
	var seq int64
	err := s.sess.Query(cqlLastSeq, chatID).WithContext(ctx).Idempotent(true).Scan(&seq)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, fmt.Errorf("cassandra: last seq %s: %w", chatID, err)
	}
	return uint64(seq), nil
}

// MessageSeq implements Store. If messageID was stored under several seqs, it
// returns the lowest.
func (s *CassandraStore) MessageSeq(ctx context.Context, chatID, messageID string) (uint64, error) {
	if chatID == "" || messageID == "" {
		return 0, ErrNotFound
	}
	var seq int64
	err := s.sess.Query(cqlMessageSeq, chatID, messageID).WithContext(ctx).Idempotent(true).Scan(&seq)
	if errors.Is(err, gocql.ErrNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("cassandra: message seq %s/%s: %w", chatID, messageID, err)
	}
	return uint64(seq), nil
}

// CreateChat implements Store. The chat and its members are one conditional batch
// on the chat's partition (a lightweight transaction: exactly one of two racing
// creates wins). The members' user_chats rows follow; if the process dies between
// the two, repeating the same CreateChat (same kind, name, creator and time) writes
// them, so a retried create converges.
func (s *CassandraStore) CreateChat(ctx context.Context, chat Chat, members []Member) (Chat, bool, error) {
	if chat.ID == "" {
		return Chat{}, false, errors.New("cassandra: create chat: empty chat ID")
	}
	chat.CreatedAt = time.UnixMilli(chat.CreatedAt.UnixMilli()).UTC()
	if err := s.refuseDeleted(ctx, chat.ID); err != nil { // cassandra_retention.go
		return Chat{}, false, err
	}
	b := s.sess.NewBatch(gocql.LoggedBatch).WithContext(ctx).RetryPolicy(nil)
	b.SerialConsistency(gocql.LocalSerial)
	b.Query(cqlCreateChat, chat.ID, chat.Kind, chat.Name, chat.CreatedBy, chat.CreatedAt, chat.Encrypted)
	for _, m := range members {
		b.Query(cqlInsertMember, chat.ID, m.UserID, m.Role, m.JoinedAt)
	}
	existing := map[string]any{}
	applied, iter, err := s.sess.MapExecuteBatchCAS(b, existing)
	if err != nil {
		return Chat{}, false, fmt.Errorf("cassandra: create chat %s: %w", chat.ID, err)
	}
	iter.Close()
	if !applied {
		stored := Chat{ID: chat.ID}
		stored.Kind, _ = existing["kind"].(string)
		stored.Name, _ = existing["name"].(string)
		stored.CreatedBy, _ = existing["created_by"].(string)
		stored.Encrypted, _ = existing["encrypted"].(bool)
		if at, ok := existing["created_at"].(time.Time); ok {
			stored.CreatedAt = at.UTC()
		}
		if stored.Kind != chat.Kind || stored.Name != chat.Name || stored.CreatedBy != chat.CreatedBy ||
			!stored.CreatedAt.Equal(chat.CreatedAt) || stored.Encrypted != chat.Encrypted {
			return stored, false, nil
		}
		// The same create again: maybe a retry after a crash; finish its index.
		current, err := s.Members(ctx, chat.ID)
		if err != nil {
			return Chat{}, false, err
		}
		members = current
	}
	ops := make([]writeOp, 0, len(members)+1)
	ops = append(ops, writeOp{what: "chat name", chat: chat.ID, serverTime: true, entries: []gocql.BatchEntry{
		entry(cqlSetChatName, chat.Name, chat.ID)}})
	for _, m := range members {
		ops = append(ops, writeOp{what: "user_chats row of " + m.UserID, chat: chat.ID, serverTime: true, entries: []gocql.BatchEntry{
			entry(cqlAddUserChat, m.UserID, chat.ID, chat.Kind, chat.Name, chat.CreatedBy, chat.CreatedAt, chat.Encrypted)}})
	}
	if err := s.run(ctx, ops); err != nil {
		return Chat{}, false, fmt.Errorf("cassandra: create chat %s: %w", chat.ID, err)
	}
	return chat, applied, nil
}

// GetChat implements Store.
func (s *CassandraStore) GetChat(ctx context.Context, chatID string) (Chat, error) {
	if chatID == "" {
		return Chat{}, ErrNotFound
	}
	c := Chat{ID: chatID}
	var kind *string // null: member rows without a chat
	var ttl *int64
	err := s.sess.Query(cqlGetChat, chatID).WithContext(ctx).Idempotent(true).Scan(&kind, &c.Name, &c.CreatedBy, &c.CreatedAt, &ttl, &c.Encrypted)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && kind == nil) {
		return Chat{}, ErrNotFound
	}
	if err != nil {
		return Chat{}, fmt.Errorf("cassandra: get chat %s: %w", chatID, err)
	}
	c.Kind, c.CreatedAt = *kind, c.CreatedAt.UTC()
	if ttl != nil {
		c.MessageTTL = *ttl
	}
	return c, nil
}

// Members implements Store.
func (s *CassandraStore) Members(ctx context.Context, chatID string) ([]Member, error) {
	if chatID == "" {
		return nil, nil
	}
	iter := s.sess.Query(cqlMembers, chatID).WithContext(ctx).Idempotent(true).Iter()
	var out []Member
	for {
		m := Member{ChatID: chatID}
		if !iter.Scan(&m.UserID, &m.Role, &m.JoinedAt) {
			break
		}
		if m.UserID == "" {
			continue // the chat's static row, with no members
		}
		m.JoinedAt = m.JoinedAt.UTC()
		out = append(out, m)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: members %s: %w", chatID, err)
	}
	return out, nil
}

// GetMember implements Store.
func (s *CassandraStore) GetMember(ctx context.Context, chatID, userID string) (Member, error) {
	if chatID == "" || userID == "" {
		return Member{}, ErrNotFound
	}
	m := Member{ChatID: chatID, UserID: userID}
	err := s.sess.Query(cqlGetMember, chatID, userID).WithContext(ctx).Idempotent(true).Scan(&m.Role, &m.JoinedAt)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && m.Role == "") {
		return Member{}, ErrNotFound
	}
	if err != nil {
		return Member{}, fmt.Errorf("cassandra: member %s/%s: %w", chatID, userID, err)
	}
	m.JoinedAt = m.JoinedAt.UTC()
	return m, nil
}

// AddMember implements Store. An existing member keeps their join time. Membership
// writes take the coordinator's clock as their timestamp, as CreateChat's LWT does,
// so a removal right after a create is ordered after it.
func (s *CassandraStore) AddMember(ctx context.Context, m Member) error {
	if m.ChatID == "" || m.UserID == "" {
		return fmt.Errorf("cassandra: add member %q/%q: empty ID", m.ChatID, m.UserID)
	}
	var stmt gocql.BatchEntry
	switch _, err := s.GetMember(ctx, m.ChatID, m.UserID); {
	case err == nil:
		stmt = entry(cqlUpdateRole, m.Role, m.ChatID, m.UserID)
	case errors.Is(err, ErrNotFound):
		stmt = entry(cqlInsertMember, m.ChatID, m.UserID, m.Role, m.JoinedAt)
	default:
		return err
	}
	meta, err := s.userChatMeta(ctx, m.ChatID)
	if err != nil {
		return err
	}
	b := s.sess.NewBatch(gocql.LoggedBatch).WithContext(ctx).DefaultTimestamp(false)
	b.Entries = append(b.Entries, stmt, entry(cqlAddUserChat, append([]any{m.UserID, m.ChatID}, meta...)...))
	if err := s.sess.ExecuteBatch(b); err != nil {
		return fmt.Errorf("cassandra: add member %s/%s: %w", m.ChatID, m.UserID, err)
	}
	return nil
}

// RemoveMember implements Store.
func (s *CassandraStore) RemoveMember(ctx context.Context, chatID, userID string) error {
	if chatID == "" || userID == "" {
		return nil
	}
	b := s.sess.NewBatch(gocql.LoggedBatch).WithContext(ctx).DefaultTimestamp(false)
	b.Entries = append(b.Entries, entry(cqlDeleteMember, chatID, userID), entry(cqlDelUserChat, userID, chatID))
	if err := s.sess.ExecuteBatch(b); err != nil {
		return fmt.Errorf("cassandra: remove member %s/%s: %w", chatID, userID, err)
	}
	return nil
}

// renameChat is Store.RenameChat (cassandra_pending.go delegates to it). The name
// is in the chat's partitions of chats (GetChat) and chat_buckets (chat lists),
// which share the partition key: one mutation sets both.
func (s *CassandraStore) renameChat(ctx context.Context, chatID, name string) error {
	if _, err := s.GetChat(ctx, chatID); err != nil {
		return err
	}
	b := s.sess.NewBatch(gocql.UnloggedBatch).WithContext(ctx).DefaultTimestamp(false)
	b.Entries = append(b.Entries, entry(cqlRenameChat, name, chatID), entry(cqlSetChatName, name, chatID))
	if err := s.sess.ExecuteBatch(b); err != nil {
		return fmt.Errorf("cassandra: rename chat %s: %w", chatID, err)
	}
	return nil
}

// userChatsReadConcurrency bounds the last-message reads of one UserChats call.
const userChatsReadConcurrency = 32

// UserChats implements Store. It reads all of the user's chats (one partition), all
// of their read state (one partition) and each chat's last message (one point read
// per chat, concurrently, plus one for a last message that operations may have
// changed), then sorts in memory: the cost grows with the number of chats the user
// is in, not with limit or offset. That is fine for the hundreds of chats people
// are in; a user in tens of thousands of chats needs an activity index.
func (s *CassandraStore) UserChats(ctx context.Context, userID string, limit, offset int) ([]ChatSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	all, err := s.allUserChats(ctx, userID)
	if err != nil {
		return nil, err
	}
	offset = max(offset, 0)
	if offset >= len(all) {
		return nil, nil
	}
	return all[offset:min(len(all), offset+limit)], nil
}

// UnreadTotal implements Store. It costs one allUserChats (a read per chat): a
// cheaper badge on Cassandra needs a per-user unread counter kept on append.
func (s *CassandraStore) UnreadTotal(ctx context.Context, userID, exceptChatID string) (uint64, error) {
	all, err := s.allUserChats(ctx, userID)
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, cs := range all {
		if cs.ID != exceptChatID {
			total += cs.Unread
		}
	}
	return total, nil
}

// userChatsBefore is Store.UserChatsBefore (cassandra_pending.go delegates to it):
// the list of UserChats after the chat that cursor names. It costs what UserChats
// costs.
func (s *CassandraStore) userChatsBefore(ctx context.Context, userID string, cursor ChatListCursor, limit int) ([]ChatSummary, error) {
	if limit <= 0 {
		limit = 100
	}
	all, err := s.allUserChats(ctx, userID)
	if err != nil {
		return nil, err
	}
	if cursor != (ChatListCursor{}) {
		at := cursor.Activity.UnixMilli()
		i, _ := slices.BinarySearchFunc(all, cursor, func(cs ChatSummary, c ChatListCursor) int {
			if d := cmp.Compare(at, cs.LastActivity.UnixMilli()); d != 0 {
				return d // newest first
			}
			return strings.Compare(cs.ID, c.ChatID)
		})
		if i < len(all) && all[i].ID == cursor.ChatID && all[i].LastActivity.UnixMilli() == at {
			i++
		}
		all = all[i:]
	}
	return all[:min(len(all), limit)], nil
}

// allUserChats returns every chat of userID, in the order of UserChats.
func (s *CassandraStore) allUserChats(ctx context.Context, userID string) ([]ChatSummary, error) {
	if userID == "" {
		return nil, nil
	}
	var reads map[string]int64
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() { reads, readErr = s.userReads(ctx, userID) })

	var list []ChatSummary
	var known []bool // whether list[i] has the chat's metadata
	iter := s.sess.Query(cqlUserChats, userID).WithContext(ctx).Idempotent(true).Iter()
	for {
		var cs ChatSummary
		var kind *string
		if !iter.Scan(&cs.ID, &kind, &cs.Name, &cs.CreatedBy, &cs.CreatedAt, &cs.Encrypted) {
			break
		}
		if kind != nil {
			cs.Kind = *kind
		}
		cs.CreatedAt = cs.CreatedAt.UTC()
		list = append(list, cs)
		known = append(known, kind != nil)
	}
	err := iter.Close()
	wg.Wait()
	if err = errors.Join(err, readErr); err != nil {
		return nil, fmt.Errorf("cassandra: chats of %s: %w", userID, err)
	}

	errs := make([]error, len(list))
	sem := make(chan struct{}, userChatsReadConcurrency)
	for i := range list {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cs := &list[i]
			known[i], errs[i] = s.fillSummary(ctx, cs, known[i])
			cs.ReadSeq = uint64(reads[cs.ID])
			if errs[i] == nil && known[i] && cs.LastSeq > cs.ReadSeq {
				cs.Unread, errs[i] = s.unread(ctx, cs.ID, cs.ReadSeq, userID)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cassandra: chats of %s: %w", userID, err)
	}
	out := make([]ChatSummary, 0, len(list))
	for i, cs := range list {
		if !known[i] {
			continue // no such chat (a member row written without one)
		}
		out = append(out, cs)
	}
	slices.SortFunc(out, func(a, b ChatSummary) int {
		if c := cmp.Compare(b.LastActivity.UnixMilli(), a.LastActivity.UnixMilli()); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// unread counts chat's messages after seq read that are Countable for user, up to
// MaxUnread: history pages forward from the watermark, so it reads what is unread
// (in its current state, which says what was deleted), never what was read, and the
// append path pays nothing for it.
func (s *CassandraStore) unread(ctx context.Context, chat string, read uint64, user string) (uint64, error) {
	var n uint64
	for n < MaxUnread {
		page, err := s.History(ctx, chat, HistoryQuery{Dir: Forward, After: read, Limit: MaxPage})
		if err != nil {
			return 0, fmt.Errorf("unread of %s in %s: %w", user, chat, err)
		}
		for i := range page {
			if Countable(&page[i], user) {
				n++
			}
		}
		if len(page) < MaxPage {
			break
		}
		read = page[len(page)-1].Seq
	}
	return min(n, MaxUnread), nil
}

// fillSummary adds to cs the chat's last seq, activity, current name and last
// message in its current state (and the chat's metadata, if the user's row lacks
// it: known false), and reports whether the chat exists.
func (s *CassandraStore) fillSummary(ctx context.Context, cs *ChatSummary, known bool) (bool, error) {
	if !known {
		chat, err := s.GetChat(ctx, cs.ID)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		cs.Chat = chat
	}
	var seq, ts int64
	var body []byte
	var name *string
	err := s.sess.Query(cqlLastState, cs.ID).WithContext(ctx).Idempotent(true).Scan(&seq, &ts, &body, &name)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return false, fmt.Errorf("last message of %s: %w", cs.ID, err)
	}
	if name != nil {
		cs.Name = *name // renamed since the user's row was written
	}
	cs.LastSeq = uint64(seq)
	cs.LastActivity = time.UnixMilli(max(ts, cs.CreatedAt.UnixMilli())).UTC()
	if len(body) == 0 {
		return true, nil
	}
	var m protocol.Message
	if json.Unmarshal(body, &m) != nil || m.Expired(time.Now().UnixMilli()) {
		return true, nil
	}
	// Operations apply to earlier messages, and every later message is one: if
	// there are any, they may have changed it.
	if cs.LastSeq > m.Seq && protocol.Referable(m.MessageType) && m.MessageID != "" {
		ops, err := s.readOps(ctx, cs.ID, m.MessageID)
		if err != nil {
			return false, err
		}
		ops.apply(&m, "", false)
		m.StateSeq = 0
	}
	cs.LastMessage = &m
	return true, nil
}

func (s *CassandraStore) userReads(ctx context.Context, userID string) (map[string]int64, error) {
	iter := s.sess.Query(cqlUserReads, userID).WithContext(ctx).Idempotent(true).Iter()
	out := map[string]int64{}
	var chatID string
	var read int64
	for iter.Scan(&chatID, &read) {
		out[chatID] = read
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return out, nil
}

// SetReadState implements Store. Each watermark is a max register (written USING
// TIMESTAMP equal to its value) so concurrent or reordered updates can never lower
// it, with no read before the write and no LWT; delivered and read go in one
// single-partition batch, which Cassandra applies atomically, so delivered >= read
// always holds. The state returned is read back after the write.
func (s *CassandraStore) SetReadState(ctx context.Context, chatID, userID string, delivered, read uint64) (ReadState, error) {
	delivered = max(delivered, read)
	if delivered > math.MaxInt64 {
		return ReadState{}, fmt.Errorf("cassandra: read state %s/%s: seq out of range", chatID, userID)
	}
	if chatID == "" || userID == "" {
		return ReadState{}, fmt.Errorf("cassandra: read state %q/%q: empty ID", chatID, userID)
	}
	d, r := int64(delivered), int64(read)
	var entries []gocql.BatchEntry
	switch {
	case r > 0 && r == d:
		entries = append(entries, entry(cqlSetReadBoth, d, d, r, userID, chatID))
	default:
		if d > 0 {
			entries = append(entries, entry(cqlSetDelivered, d, d, userID, chatID))
		}
		if r > 0 {
			entries = append(entries, entry(cqlSetRead, r, r, userID, chatID))
		}
	}
	if len(entries) > 0 {
		if err := s.run(ctx, []writeOp{{what: "read state of " + userID, chat: chatID, entries: entries}}); err != nil {
			return ReadState{}, fmt.Errorf("cassandra: read state %s/%s: %w", chatID, userID, err)
		}
	}
	rs, err := s.GetReadState(ctx, chatID, userID)
	if err != nil {
		return ReadState{}, err
	}
	// With a consistency below quorum the read may miss the write just made.
	rs.Read = max(rs.Read, read)
	rs.Delivered = max(rs.Delivered, delivered, rs.Read)
	return rs, nil
}

// GetReadState implements Store.
func (s *CassandraStore) GetReadState(ctx context.Context, chatID, userID string) (ReadState, error) {
	rs := ReadState{ChatID: chatID, UserID: userID}
	if chatID == "" || userID == "" {
		return rs, nil
	}
	var d, r int64
	err := s.sess.Query(cqlGetReadState, userID, chatID).WithContext(ctx).Idempotent(true).Scan(&d, &r)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return ReadState{}, fmt.Errorf("cassandra: read state %s/%s: %w", chatID, userID, err)
	}
	rs.Delivered, rs.Read = uint64(max(d, r)), uint64(r)
	return rs, nil
}

// SetMute implements Store. Concurrent changes of one mute resolve last write wins.
func (s *CassandraStore) SetMute(ctx context.Context, m Mute) error {
	if m.ChatID == "" || m.UserID == "" {
		return fmt.Errorf("cassandra: set mute %q/%q: empty ID", m.ChatID, m.UserID)
	}
	q := s.sess.Query(cqlDeleteMute, m.ChatID, m.UserID)
	if m.Muted {
		var until any // null: until unmuted (and clears an earlier end)
		if !m.Until.IsZero() {
			until = m.Until
		}
		q = s.sess.Query(cqlSetMute, m.ChatID, m.UserID, until)
	}
	if err := q.WithContext(ctx).Idempotent(true).Exec(); err != nil {
		return fmt.Errorf("cassandra: set mute %s/%s: %w", m.ChatID, m.UserID, err)
	}
	return nil
}

// GetMute implements Store.
func (s *CassandraStore) GetMute(ctx context.Context, chatID, userID string) (Mute, error) {
	m := Mute{ChatID: chatID, UserID: userID}
	if chatID == "" || userID == "" {
		return m, nil
	}
	var until *time.Time
	err := s.sess.Query(cqlGetMute, chatID, userID).WithContext(ctx).Idempotent(true).Scan(&until)
	if errors.Is(err, gocql.ErrNotFound) {
		return m, nil
	}
	if err != nil {
		return Mute{}, fmt.Errorf("cassandra: get mute %s/%s: %w", chatID, userID, err)
	}
	m.Muted = true
	if until != nil {
		m.Until = until.UTC()
	}
	return m, nil
}

// Ping implements Store: one round trip to a node.
func (s *CassandraStore) Ping(ctx context.Context) error {
	var v string
	if err := s.sess.Query(cqlPing).WithContext(ctx).Idempotent(true).Consistency(gocql.One).Scan(&v); err != nil {
		return fmt.Errorf("cassandra: ping: %w", err)
	}
	return nil
}

// Close implements Store. It is safe to call more than once.
func (s *CassandraStore) Close() error {
	s.sess.Close()
	return nil
}

// userChatMeta is the copy of chat's metadata a user_chats row carries, as the
// values after user_id and chat_id in cqlAddUserChat; with no chat (yet) they are
// left unset and UserChats looks the chat up.
func (s *CassandraStore) userChatMeta(ctx context.Context, chatID string) ([]any, error) {
	chat, err := s.GetChat(ctx, chatID)
	switch {
	case err == nil:
		return []any{chat.Kind, chat.Name, chat.CreatedBy, chat.CreatedAt, chat.Encrypted}, nil
	case errors.Is(err, ErrNotFound):
		return []any{gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue, gocql.UnsetValue}, nil
	}
	return nil, err
}
