// Package subjects names the NATS subjects and streams that make up Natter's internal
// contract (DESIGN.md section 2). Every function expects IDs that passed ids.Valid;
// callers validate at the edge, so no user-controlled token can add subject levels.
package subjects

import (
	"hash/fnv"
	"strconv"
)

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "natter"

// Subjects builds subject names under one prefix. The zero value is not usable; use New.
type Subjects struct {
	Prefix string
	// Partitions is the number of ingress partitions (P). Must be >= 1.
	Partitions int
}

// New returns Subjects for prefix (DefaultPrefix if empty) and p partitions (1 if < 1).
func New(prefix string, p int) Subjects {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if p < 1 {
		p = 1
	}
	return Subjects{Prefix: prefix, Partitions: p}
}

// Stream names. They do not carry the prefix, so two deployments sharing one NATS
// account must use different accounts (or a JetStream domain), not prefixes alone.
const (
	InStream  = "NATTER_IN"
	LogStream = "NATTER_LOG"
	DLQStream = "NATTER_DLQ"
)

// In is the ingress subject a client frame for chat is published to.
func (s Subjects) In(chat string) string { return s.Prefix + ".in." + chat }

// InAll matches every ingress subject as published.
func (s Subjects) InAll() string { return s.Prefix + ".in.*" }

// InPartitioned is the subject an ingress message is stored under after the stream's
// subject transform: <prefix>.in.p.<partition>.<chat>.
func (s Subjects) InPartitioned(chat string) string {
	return s.InPartition(s.Partition(chat)) + "." + chat
}

// InPartition is the filter subject of one ingress partition.
func (s Subjects) InPartition(p int) string {
	return s.Prefix + ".in.p." + strconv.Itoa(p)
}

// InTransformSrc and InTransformDest form the NATTER_IN stream's subject transform
// that computes the partition token from the chat ID (server-side, so publishers do
// not need to know P).
func (s Subjects) InTransformSrc() string { return s.InAll() }

// InTransformDest is the destination of the ingress subject transform.
func (s Subjects) InTransformDest() string {
	return s.Prefix + ".in.p.{{partition(" + strconv.Itoa(s.Partitions) + ",1)}}.{{wildcard(1)}}"
}

// Partition returns the ingress partition of chat, the same one the server-side
// transform computes (FNV-1a 32 of the token, modulo P).
func (s Subjects) Partition(chat string) int {
	h := fnv.New32a()
	h.Write([]byte(chat))
	return int(h.Sum32() % uint32(s.Partitions))
}

// Log is the subject of chat's sequenced messages in NATTER_LOG.
func (s Subjects) Log(chat string) string { return s.Prefix + ".log." + chat }

// LogAll matches every log subject.
func (s Subjects) LogAll() string { return s.Prefix + ".log.*" }

// User is the core subject a user's deliveries are published to.
func (s Subjects) User(uid string) string { return s.Prefix + ".user." + uid }

// UserPrefix is User("") : the prefix every user subject starts with.
func (s Subjects) UserPrefix() string { return s.Prefix + ".user." }

// Presence is the subject a user's presence changes are published on.
func (s Subjects) Presence(uid string) string { return s.Prefix + ".presence." + uid }

// Heartbeat is the subject gateways report connection state to the presence role on.
func (s Subjects) Heartbeat() string { return s.Prefix + ".hb" }

// Typing is the subject typing frames for chat are published on.
func (s Subjects) Typing(chat string) string { return s.Prefix + ".typing." + chat }

// Rcpt is the subject receipts for chat are published on.
func (s Subjects) Rcpt(chat string) string { return s.Prefix + ".rcpt." + chat }

// Notify is the subject notifications for uid are published on, for backend services.
func (s Subjects) Notify(uid string) string { return s.Prefix + ".notify." + uid }

// PresencePrefix is Presence(""): the prefix every presence subject starts with.
func (s Subjects) PresencePrefix() string { return s.Prefix + ".presence." }

// DLQ is the subject failed deliveries of kind (e.g. "notify") are kept under, in
// DLQStream, until an operator replays them.
func (s Subjects) DLQ(kind string) string { return s.Prefix + ".dlq." + kind }

// DLQAll matches every dead-letter subject: the subjects of DLQStream.
func (s Subjects) DLQAll() string { return s.Prefix + ".dlq.>" }
