package store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/gocql/gocql"
	"go.uber.org/zap"
)

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
