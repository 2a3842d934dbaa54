package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"github.com/natter-chat/natter/pkg/lifecycle"
	"go.uber.org/zap"
)

// cassandraMigration is one schema version. Statements run in order in the store's
// keyspace, one at a time (Cassandra has no DDL transactions), so each must be
// idempotent (IF NOT EXISTS): a migration interrupted half-way is simply run again.
type cassandraMigration struct {
	Version int
	Name    string
	Stmts   []string
}

// cassandraMigrations are applied in order. Never edit a released entry: append one.
//
// The schema, and why (see also DESIGN.md section 6):
//
//   - messages: one partition per (chat, time bucket), newest first. bucket is the
//     start of the bucket's time window in ms since the epoch (timestamp rounded down
//     to a multiple of the configured bucket width), so partitions stay bounded in
//     size and the width can be changed at any time: old and new buckets coexist.
//   - chat_buckets: one partition per chat. Its static columns are the chat's
//     highest seq and time (LastSeq, LastActivity), its newest message that is not
//     an operation (the chat list's last message), its name as the chat list shows
//     it, and pending (below); its rows are the bucket
//     index: one row per (seq block, bucket) pair that holds messages, where block =
//     seq / 256, with the exact lowest and highest seq of the chat's messages that
//     fall in both. A history cursor seeks straight to its block (a clustering
//     range), and the rows of the block name exactly the buckets to read and which
//     seqs each holds, so empty buckets are never touched and the answer is exact
//     even if timestamps went backwards. Keeping the last message in the same
//     partition makes a batch's index and last-message update one mutation.
//   - message_ids: messageID -> seq (MessageSeq; the lowest seq is the first row)
//     and the bucket of that message.
//   - message_ops: the edit, delete and react events applied to a message, by the
//     messageID they reference. It is the truth about a message's current state,
//     which reads compute (the event with the highest seq wins, whatever the order
//     the events were stored in). So that History reads it only for messages that
//     have events, an event sets has_ops on its target's row (found through
//     message_ids), or, if the target is not stored yet (two persisters racing),
//     adds the target's messageID to chat_buckets.pending, which History reads with
//     the bucket index.
//   - chats: a chat's partition: its metadata in static columns and one row per
//     member, so CreateChat is one conditional (LWT) batch on one partition.
//   - user_chats: a user's chats with the chat metadata copied in (chats are never
//     renamed through the Store), for UserChats.
//   - read_state: a user's delivered and read watermarks, partitioned by user so one
//     read serves UserChats.
//   - mutes: notification mutes, partitioned by chat so the notifier can read (or
//     cache) a chat's mutes in one query.
//
// Registers. chat_buckets' last seq and message and min_seq/max_seq, reactions in
// message_ops, and read_state must only ever move one way under concurrent,
// retried and reordered writes, without LWT and without a read before the write.
// They are written with USING TIMESTAMP derived from the value itself: Cassandra
// keeps the cell with the highest write timestamp, so a cell written with
// timestamp = value (or = the seq of the event that set it) is a max register, and
// min_seq, written with timestamp = (block+1)*256 - seq, is a min register. Both
// are commutative and idempotent. The cost: these cells carry small synthetic
// timestamps, so a plain DELETE (which uses the current time) of those rows or
// partitions would hide them for good; delete them only with
// USING TIMESTAMP 9223372036854775807.
var cassandraMigrations = []cassandraMigration{{
	Version: 1,
	Name:    "initial schema",
	Stmts: []string{
		`CREATE TABLE IF NOT EXISTS messages (
	chat_id text,
	bucket bigint,
	seq bigint,
	message_id text,
	sender_id text,
	content text,
	message_type text,
	ts bigint,
	reply_to text,
	ref_id text,
	meta blob,
	has_ops boolean,
	PRIMARY KEY ((chat_id, bucket), seq)
) WITH CLUSTERING ORDER BY (seq DESC)
	AND comment = 'messages; bucket = start of the time window (ms since epoch); ts in ms; has_ops: see message_ops'`,
		`CREATE TABLE IF NOT EXISTS chat_buckets (
	chat_id text,
	last_seq bigint static,
	last_ts bigint static,
	last_message blob static,
	chat_name text static,
	pending set<text> static,
	block bigint,
	bucket bigint,
	min_seq bigint,
	max_seq bigint,
	PRIMARY KEY (chat_id, block, bucket)
) WITH CLUSTERING ORDER BY (block DESC, bucket DESC)
	AND comment = 'per chat: last message (static, JSON) and the bucket index (block = seq / 256); all registers written USING TIMESTAMP'`,
		`CREATE TABLE IF NOT EXISTS message_ids (
	chat_id text,
	message_id text,
	seq bigint,
	bucket bigint,
	PRIMARY KEY ((chat_id, message_id), seq)
) WITH CLUSTERING ORDER BY (seq ASC)
	AND comment = 'messageId -> seq; the first row is the lowest seq'`,
		`CREATE TABLE IF NOT EXISTS message_ops (
	chat_id text,
	message_id text,
	kind text,
	emoji text,
	user_id text,
	seq bigint,
	content text,
	present boolean,
	rseq bigint,
	PRIMARY KEY ((chat_id, message_id), kind, emoji, user_id, seq)
) WITH comment = 'edit, delete and react events by the message they reference; reactions are registers written USING TIMESTAMP seq'`,
		`CREATE TABLE IF NOT EXISTS chats (
	chat_id text,
	user_id text,
	kind text static,
	name text static,
	created_by text static,
	created_at timestamp static,
	role text,
	joined_at timestamp,
	PRIMARY KEY (chat_id, user_id)
) WITH CLUSTERING ORDER BY (user_id ASC)
	AND comment = 'chat metadata (static) and its members (rows)'`,
		`CREATE TABLE IF NOT EXISTS user_chats (
	user_id text,
	chat_id text,
	kind text,
	name text,
	created_by text,
	created_at timestamp,
	PRIMARY KEY (user_id, chat_id)
) WITH comment = 'chats of a user, with a copy of the chat metadata'`,
		`CREATE TABLE IF NOT EXISTS mutes (
	chat_id text,
	user_id text,
	until timestamp,
	PRIMARY KEY (chat_id, user_id)
) WITH comment = 'a row is a mute; until null: until unmuted'`,
		`CREATE TABLE IF NOT EXISTS read_state (
	user_id text,
	chat_id text,
	delivered_seq bigint,
	read_seq bigint,
	PRIMARY KEY (user_id, chat_id)
) WITH comment = 'watermarks; max registers written USING TIMESTAMP value'`,
	},
}, {
	Version: 2,
	Name:    "full-text search with SAI",
	// message_search: the folded words and their prefixes of each searchable
	// message (op_seq = seq) and of each edit of it (op_seq = the edit's seq),
	// partitioned by (chat, seq / 65536), each set indexed by SAI
	// (cassandra_search.go says why Natter analyses the words, not SAI). Messages
	// stored before this migration are not indexed: search finds what is stored
	// from then on.
	Stmts: []string{
		`CREATE TABLE IF NOT EXISTS message_search (
	chat_id text,
	part bigint,
	seq bigint,
	op_seq bigint,
	bucket bigint,
	ts bigint,
	words set<text>,
	prefixes set<text>,
	PRIMARY KEY ((chat_id, part), seq, op_seq)
) WITH CLUSTERING ORDER BY (seq DESC, op_seq DESC)
	AND comment = 'search terms of each searchable message and of its edits; a delete removes them USING TIMESTAMP 2^62'`,
		`CREATE INDEX IF NOT EXISTS message_search_words ON message_search (words) USING 'sai'`,
		`CREATE INDEX IF NOT EXISTS message_search_prefixes ON message_search (prefixes) USING 'sai'`,
	},
}, {
	Version: 3,
	Name:    "push devices",
	// devices: a user's push devices, one partition per user (the notifier reads
	// it whole). devices_by_token: which device holds a provider token, so that a
	// token registered again (a phone that changed hands) leaves its former device.
	Stmts: []string{
		`CREATE TABLE IF NOT EXISTS devices (
	user_id text,
	device_id text,
	platform text,
	provider text,
	push_token text,
	updated_at timestamp,
	PRIMARY KEY (user_id, device_id)
) WITH comment = 'push devices of a user (cassandra_devices.go)'`,
		`CREATE TABLE IF NOT EXISTS devices_by_token (
	provider text,
	push_token text,
	user_id text,
	device_id text,
	PRIMARY KEY ((provider, push_token))
) WITH comment = 'the one device that holds a provider token'`,
	},
}, {
	Version: 4,
	Name:    "profiles, blocks and invitations",
	// profiles: one row per user who set one. blocks: who a user blocks (one
	// partition per blocker); blocks_by_blocked: the same pairs by the blocked user,
	// so consent checks find everyone blocking an inviter in one read.
	// invitations: a user's pending group invitations (cassandra_people.go).
	Stmts: []string{
		`CREATE TABLE IF NOT EXISTS profiles (
	user_id text PRIMARY KEY,
	display_name text,
	avatar text,
	group_adds text,
	updated_at timestamp
) WITH comment = 'display name, avatar media ID and group-add setting of a user'`,
		`CREATE TABLE IF NOT EXISTS blocks (
	blocker text,
	blocked text,
	created_at timestamp,
	PRIMARY KEY (blocker, blocked)
) WITH comment = 'the users a user blocks'`,
		`CREATE TABLE IF NOT EXISTS blocks_by_blocked (
	blocked text,
	blocker text,
	PRIMARY KEY (blocked, blocker)
) WITH comment = 'the users who block a user'`,
		`CREATE TABLE IF NOT EXISTS invitations (
	user_id text,
	chat_id text,
	invited_by text,
	role text,
	created_at timestamp,
	PRIMARY KEY (user_id, chat_id)
) WITH comment = 'pending group invitations of a user'`,
	},
}, {
	Version: 5,
	Name:    "end-to-end encryption",
	// device_keys: the key directory (cassandra_keys.go), one partition per user
	// (a claim reads it whole); every write to it is a lightweight transaction.
	// one_time_keys: a device's supply, claimed by conditional deletes. chats and
	// user_chats: the encrypted flag of a chat (user_chats copies it like the other
	// metadata).
	Stmts: []string{
		`CREATE TABLE IF NOT EXISTS device_keys (
	user_id text,
	device_id text,
	identity_key text,
	spk_id bigint,
	spk_key text,
	spk_sig text,
	revoked boolean,
	announced boolean,
	updated_at timestamp,
	PRIMARY KEY (user_id, device_id)
) WITH comment = 'published keys of a user''s devices; written only with LWT (cassandra_keys.go)'`,
		`CREATE TABLE IF NOT EXISTS one_time_keys (
	user_id text,
	device_id text,
	key_id bigint,
	key text,
	PRIMARY KEY ((user_id, device_id), key_id)
) WITH comment = 'one-time keys of a device; a claim is a conditional delete'`,
		`ALTER TABLE chats ADD IF NOT EXISTS encrypted boolean static`,
		`ALTER TABLE user_chats ADD IF NOT EXISTS encrypted boolean`,
	},
}, {
	Version: 6,
	Name:    "retention and deletion",
	// expires_at: when the message expires (ms; null never), its rows carry the TTL
	// too (cassandra_retention.go). chats.message_ttl: the chat's message TTL in
	// seconds. deleted_chats: IDs of deleted chats, never used again. history_floors:
	// per-user "clear history" floors, max registers written USING TIMESTAMP seq.
	Stmts: []string{
		`ALTER TABLE messages ADD IF NOT EXISTS expires_at bigint`,
		`ALTER TABLE chats ADD IF NOT EXISTS message_ttl bigint static`,
		`CREATE TABLE IF NOT EXISTS deleted_chats (
	chat_id text PRIMARY KEY,
	deleted_at timestamp
) WITH comment = 'deleted chats: their IDs stay reserved'`,
		`CREATE TABLE IF NOT EXISTS history_floors (
	user_id text,
	chat_id text,
	seq bigint,
	PRIMARY KEY (user_id, chat_id)
) WITH comment = 'per-user history floors (clear history); max registers written USING TIMESTAMP seq'`,
	},
}, {
	Version: 7,
	Name:    "a chat's admins",
	// chats_role: members by role, so that a chat's admins are found within its
	// partition without reading its members (cassandra_admins.go): the last-admin
	// rule reads them on every removal of an admin. SAI, as for search.
	Stmts: []string{
		`CREATE INDEX IF NOT EXISTS chats_role ON chats (role) USING 'sai'`,
	},
}}

// cassandraSchemaVersion is the schema version this binary reads and writes.
var cassandraSchemaVersion = cassandraMigrations[len(cassandraMigrations)-1].Version

// Bookkeeping tables, created before any migration runs (so not versioned).
const (
	cqlCreateSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version int PRIMARY KEY,
	name text,
	applied_at timestamp
) WITH comment = 'Natter schema versions applied by natter migrate'`
	cqlCreateSchemaLock = `CREATE TABLE IF NOT EXISTS schema_lock (
	id int PRIMARY KEY,
	owner text,
	since timestamp
) WITH comment = 'held (LWT, with a TTL) while natter migrate runs'`
	cqlSchemaVersions = `SELECT version FROM schema_migrations`
	cqlSchemaApplied  = `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`
	cqlLockAcquire    = `INSERT INTO schema_lock (id, owner, since) VALUES (1, ?, ?) IF NOT EXISTS USING TTL 600`
	cqlLockRelease    = `DELETE FROM schema_lock WHERE id = 1 IF owner = ?`
)

// CassandraSchema returns the whole schema as a CQL script (keyspace, bookkeeping
// tables, every migration, and the rows that record them), for operators who review
// or apply it by hand with cqlsh. deploy/cassandra/schema.cql is its output for
// keyspace "natter" and replication factor 3; a test keeps that file current.
func CassandraSchema(keyspace string, replicationFactor int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Natter Cassandra schema, version %d. Generated by store.CassandraSchema:\n", cassandraSchemaVersion)
	b.WriteString("-- `natter migrate` applies it (and later versions) for you; this copy is for review\n")
	b.WriteString("-- and for applying by hand with cqlsh. Tables are documented in\n")
	b.WriteString("-- pkg/store/cassandra_migrations.go.\n\n")
	b.WriteString(cqlCreateKeyspace(keyspace, replicationFactor) + ";\n\n")
	fmt.Fprintf(&b, "USE %s;\n\n", keyspace)
	b.WriteString(cqlCreateSchemaMigrations + ";\n\n")
	b.WriteString(cqlCreateSchemaLock + ";\n")
	for _, m := range cassandraMigrations {
		fmt.Fprintf(&b, "\n-- version %d: %s\n", m.Version, m.Name)
		for _, s := range m.Stmts {
			b.WriteString("\n" + s + ";\n")
		}
		fmt.Fprintf(&b, "\nINSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, '%s', toTimestamp(now()));\n",
			m.Version, strings.ReplaceAll(m.Name, "'", "''"))
	}
	return b.String()
}

// cqlCreateKeyspace uses NetworkTopologyStrategy with the replication_factor
// shorthand (Cassandra 4.0+): that many replicas in every data center, which is right
// for one node (RF 1) and for production (RF 3); SimpleStrategy is not rack aware.
func cqlCreateKeyspace(keyspace string, rf int) string {
	return fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = "+
		"{'class': 'NetworkTopologyStrategy', 'replication_factor': %d} AND durable_writes = true", keyspace, rf)
}

// MigrateCassandra brings cfg.Keyspace to the schema version this binary needs:
// it creates the keyspace if it is missing (NetworkTopologyStrategy with
// cfg.ReplicationFactor replicas per data center; an existing keyspace's
// replication is left alone), then applies the pending migrations in order,
// recording each in schema_migrations. It is idempotent, and concurrent runs
// serialise on a lock row (an LWT with a 10 minute TTL, so a crashed run cannot
// block the next for longer). It returns an error if the keyspace's schema is newer
// than this binary knows, or if ctx ends while it waits for the lock.
func MigrateCassandra(ctx context.Context, cfg CassandraConfig, logger *zap.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.readPasswordFile(); err != nil {
		return err
	}
	log := logger.With(zap.String("keyspace", cfg.Keyspace))
	if err := ensureKeyspace(ctx, cfg, log); err != nil {
		return err
	}
	cluster := ddlCluster(cfg, logger)
	cluster.Keyspace = cfg.Keyspace
	sess, err := cluster.CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra: migrate: connect to keyspace %s: %w", cfg.Keyspace, err)
	}
	defer sess.Close()
	for _, stmt := range []string{cqlCreateSchemaMigrations, cqlCreateSchemaLock} {
		if err := execDDL(ctx, sess, stmt, log); err != nil {
			return fmt.Errorf("cassandra: migrate %s: create bookkeeping tables: %w", cfg.Keyspace, err)
		}
	}
	release, err := acquireSchemaLock(ctx, sess, log)
	if err != nil {
		return err
	}
	defer release()

	applied, err := schemaVersions(ctx, sess)
	if err != nil {
		return fmt.Errorf("cassandra: migrate %s: %w", cfg.Keyspace, err)
	}
	if v := maxVersion(applied); v > cassandraSchemaVersion {
		return fmt.Errorf("cassandra: keyspace %s has schema version %d, newer than this binary knows (%d): run a newer natter",
			cfg.Keyspace, v, cassandraSchemaVersion)
	}
	for _, m := range cassandraMigrations {
		if applied[m.Version] {
			continue
		}
		start := time.Now()
		for i, stmt := range m.Stmts {
			if err := execDDL(ctx, sess, stmt, log); err != nil {
				return fmt.Errorf("cassandra: migration %d (%s) statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := sess.AwaitSchemaAgreement(ctx); err != nil {
			return fmt.Errorf("cassandra: migration %d: waiting for schema agreement: %w", m.Version, err)
		}
		if err := sess.Query(cqlSchemaApplied, m.Version, m.Name, time.Now()).WithContext(ctx).Exec(); err != nil {
			return fmt.Errorf("cassandra: migration %d: record it: %w", m.Version, err)
		}
		log.Info("cassandra migration applied", zap.Int("version", m.Version), zap.String("name", m.Name),
			zap.Duration("took", time.Since(start)))
	}
	return nil
}

func ensureKeyspace(ctx context.Context, cfg CassandraConfig, log *zap.Logger) error {
	sess, err := ddlCluster(cfg, log).CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra: connect to %s: %w (is Cassandra running? check cassandra.hosts and cassandra.port)",
			strings.Join(cfg.Hosts, ","), err)
	}
	defer sess.Close()
	exists, err := keyspaceExists(ctx, sess, cfg.Keyspace)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	if err := execDDL(ctx, sess, cqlCreateKeyspace(cfg.Keyspace, cfg.ReplicationFactor), log); err != nil {
		return fmt.Errorf("cassandra: create keyspace %s: %w", cfg.Keyspace, err)
	}
	log.Info("cassandra keyspace created", zap.Int("replication_factor", cfg.ReplicationFactor))
	return nil
}

// Schema changes on a busy node. A CREATE is answered only once the node has
// applied it and the driver has seen every node agree on the new schema version,
// which on a loaded machine or a large cluster takes far longer than a read or a
// write: migrations get their own, generous timeouts, and a statement whose
// answer did not come in time is sent again (every migration statement is
// CREATE ... IF NOT EXISTS, so running one twice is harmless).
var (
	// ddlTimeout is the least time one schema statement may take on a node.
	ddlTimeout = 60 * time.Second
	// ddlConnectTimeout is the least time connecting to a node may take during
	// migrations.
	ddlConnectTimeout = 20 * time.Second
	// ddlSchemaAgreement bounds the wait for every node to agree on the schema
	// after a change.
	ddlSchemaAgreement = 2 * time.Minute
	// ddlAttempts is how many times a schema statement is sent before its
	// error is returned.
	ddlAttempts = 5
)

// ddlCluster is the driver configuration for migrations: cfg's, with timeouts of
// at least ddlTimeout and ddlConnectTimeout.
func ddlCluster(cfg CassandraConfig, log *zap.Logger) *gocql.ClusterConfig {
	cl := cfg.cluster(log)
	cl.Timeout = max(cl.Timeout, ddlTimeout)
	cl.WriteTimeout = max(cl.WriteTimeout, ddlTimeout)
	cl.ConnectTimeout = max(cl.ConnectTimeout, ddlConnectTimeout)
	cl.MaxWaitSchemaAgreement = ddlSchemaAgreement
	return cl
}

// execDDL runs an idempotent schema statement and waits for schema agreement. A
// statement that timed out, or whose node was unavailable or lost, is sent again
// with backoff, up to ddlAttempts times; other errors are returned at once.
func execDDL(ctx context.Context, sess *gocql.Session, stmt string, log *zap.Logger) error {
	return lifecycle.Retry(ctx, lifecycle.Backoff{Initial: time.Second, Max: 10 * time.Second, MaxTries: uint(ddlAttempts)},
		func() error {
			err := sess.Query(stmt).WithContext(ctx).Exec()
			if err == nil {
				err = sess.AwaitSchemaAgreement(ctx)
			}
			if err != nil && !retryableDDL(err) {
				return lifecycle.Permanent(err)
			}
			return err
		}, func(err error, attempt int, _ time.Duration) {
			log.Warn("cassandra: schema statement not confirmed in time; sending it again",
				zap.Int("attempt", attempt), zap.String("statement", firstLine(stmt)), zap.Error(err))
		})
}

// retryableDDL reports whether err says the node did not (yet) answer, rather than
// refused the statement.
func retryableDDL(err error) bool {
	var timeout *gocql.RequestErrWriteTimeout
	var unavailable *gocql.RequestErrUnavailable
	switch {
	case errors.Is(err, gocql.ErrTimeoutNoResponse), errors.Is(err, gocql.ErrNoConnections),
		errors.Is(err, gocql.ErrConnectionClosed), errors.As(err, &timeout), errors.As(err, &unavailable):
		return true
	}
	// Schema agreement not reached within MaxWaitSchemaAgreement (the driver's
	// error has no type of its own), and a node's own timeout of the change.
	msg := err.Error()
	return strings.Contains(msg, "schema versions not consistent") || strings.Contains(msg, "timed out")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func keyspaceExists(ctx context.Context, sess *gocql.Session, keyspace string) (bool, error) {
	var name string
	err := sess.Query(`SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?`, keyspace).
		WithContext(ctx).Scan(&name)
	if errors.Is(err, gocql.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cassandra: look up keyspace %s: %w", keyspace, err)
	}
	return true, nil
}

// acquireSchemaLock takes the migration lock, waiting while another run holds it.
func acquireSchemaLock(ctx context.Context, sess *gocql.Session, log *zap.Logger) (release func(), err error) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	for warned := false; ; {
		existing := map[string]any{}
		applied, err := sess.Query(cqlLockAcquire, owner, time.Now()).WithContext(ctx).
			SerialConsistency(gocql.LocalSerial).MapScanCAS(existing)
		if err != nil {
			return nil, fmt.Errorf("cassandra: migrate: take the schema lock: %w", err)
		}
		if applied {
			break
		}
		if !warned {
			log.Info("another natter migrate holds the schema lock; waiting", zap.Any("holder", existing["owner"]))
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cassandra: migrate: waiting for the schema lock held by %v (it expires 10 minutes after it was taken): %w",
				existing["owner"], ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return func() {
		// Best effort: the TTL frees the lock anyway. A fresh context, so a cancelled
		// migration still releases it.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := sess.Query(cqlLockRelease, owner).WithContext(ctx).
			SerialConsistency(gocql.LocalSerial).ScanCAS(); err != nil {
			log.Warn("cassandra: could not release the schema lock; it expires by itself within 10 minutes", zap.Error(err))
		}
	}, nil
}

func schemaVersions(ctx context.Context, sess *gocql.Session) (map[int]bool, error) {
	iter := sess.Query(cqlSchemaVersions).WithContext(ctx).Iter()
	out := map[int]bool{}
	var v int
	for iter.Scan(&v) {
		out[v] = true
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

func maxVersion(applied map[int]bool) int {
	m := 0
	for v := range applied {
		m = max(m, v)
	}
	return m
}

// checkCassandraSchema tells the operator what to do when the keyspace the store
// opened is not at the version this binary needs.
func checkCassandraSchema(ctx context.Context, sess *gocql.Session, keyspace string) error {
	var table string
	err := sess.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'schema_migrations'`,
		keyspace).WithContext(ctx).Scan(&table)
	if errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf("cassandra: keyspace %s has no Natter schema (no schema_migrations table): run `natter migrate`", keyspace)
	}
	if err != nil {
		return fmt.Errorf("cassandra: keyspace %s: look up schema_migrations: %w", keyspace, err)
	}
	applied, err := schemaVersions(ctx, sess)
	if err != nil {
		return fmt.Errorf("cassandra: keyspace %s: %w", keyspace, err)
	}
	switch v := maxVersion(applied); {
	case v > cassandraSchemaVersion:
		return fmt.Errorf("cassandra: keyspace %s has schema version %d, newer than this binary knows (%d): run a newer natter",
			keyspace, v, cassandraSchemaVersion)
	case len(applied) < len(cassandraMigrations) || v < cassandraSchemaVersion:
		return fmt.Errorf("cassandra: keyspace %s is at schema version %d, this binary needs %d: run `natter migrate`",
			keyspace, v, cassandraSchemaVersion)
	}
	return nil
}
