// Package subjects names the NATS subjects and streams that make up Natter's internal
// contract (DESIGN.md section 2). Every function expects IDs that passed ids.Valid;
// callers validate at the edge, so no user-controlled token can add subject levels.
package subjects

import (
	"hash/fnv"
	"strconv"
	"strings"
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

// Svc is the service ingress subject of chat: what backend services (pkg/publish)
// publish to. It is stored in NATTER_IN with the gateways' ingress, in the same
// partition, but its origin stays visible in the stored subject (InOrigin), so the
// sequencer never takes a service's message for one a gateway vouched for. NATS
// permissions keep the backend user to these subjects and off In.
func (s Subjects) Svc(chat string) string { return s.Prefix + ".svc." + chat }

// SvcAll matches every service ingress subject.
func (s Subjects) SvcAll() string { return s.Prefix + ".svc.*" }

// Origins of an ingress message, the token after the chat in its stored subject.
const (
	OriginGateway = "in"  // published by a gateway on In
	OriginService = "svc" // published by a backend service on Svc
)

// InPartitioned is the subject a gateway's ingress message is stored under after
// the stream's subject transform: <prefix>.in.p.<partition>.<chat>.in.
func (s Subjects) InPartitioned(chat string) string { return s.InStored(chat, OriginGateway) }

// InStored is the subject an ingress message for chat published with origin
// (OriginGateway on In, OriginService on Svc) is stored under.
func (s Subjects) InStored(chat, origin string) string {
	return s.InPartition(s.Partition(chat)) + "." + chat + "." + origin
}

// InOrigin parses a stored NATTER_IN subject: the chat and the origin of the
// message (OriginGateway or OriginService). A subject stored before origins
// existed (<prefix>.in.p.<n>.<chat>) has OriginGateway. ok is false for a subject
// that is not a stored ingress subject.
func (s Subjects) InOrigin(stored string) (chat, origin string, ok bool) {
	rest, found := strings.CutPrefix(stored, s.Prefix+".in.p.")
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ".")
	switch len(parts) {
	case 2:
		return parts[1], OriginGateway, true
	case 3:
		if parts[2] == OriginGateway || parts[2] == OriginService {
			return parts[1], parts[2], true
		}
	}
	return "", "", false
}

// InPartition is the filter subject of one ingress partition.
func (s Subjects) InPartition(p int) string {
	return s.Prefix + ".in.p." + strconv.Itoa(p)
}

// InTransformSrc and InTransformDest form the NATTER_IN stream's subject transform
// that computes the partition token from the chat ID (server-side, so publishers do
// not need to know P) and keeps the origin: <prefix>.in.<chat> and
// <prefix>.svc.<chat> are stored as <prefix>.in.p.<n>.<chat>.in and .svc. The source
// matches only what the stream captures (InAll and SvcAll).
func (s Subjects) InTransformSrc() string { return s.Prefix + ".*.*" }

// InTransformDest is the destination of the ingress subject transform.
func (s Subjects) InTransformDest() string {
	return s.Prefix + ".in.p.{{partition(" + strconv.Itoa(s.Partitions) + ",2)}}.{{wildcard(2)}}.{{wildcard(1)}}"
}

// TransformPartitions reads P back from an ingress transform destination made by
// InTransformDest ("...{{partition(P,2)}}..."); 0 when dest is not one.
func TransformPartitions(dest string) int {
	_, rest, ok := strings.Cut(dest, "{{partition(")
	if !ok {
		return 0
	}
	n, _, ok := strings.Cut(rest, ",")
	if !ok {
		return 0
	}
	p, err := strconv.Atoi(n)
	if err != nil || p < 1 {
		return 0
	}
	return p
}

// InPartitionFilter matches every stored message of ingress partition p, of either
// origin (and from before origins existed).
func (s Subjects) InPartitionFilter(p int) string { return s.InPartition(p) + ".>" }

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

// BlockChanges is the core subject a gateway announces a change of a user's block
// list on (the payload is the blocker's ID), so the roles that cache block lists
// (pkg/blockchanges) drop theirs at once instead of after a TTL.
func (s Subjects) BlockChanges() string { return s.Prefix + ".blocks" }

// Notify is the subject notifications for uid are published on, for backend services.
func (s Subjects) Notify(uid string) string { return s.Prefix + ".notify." + uid }

// PresencePrefix is Presence(""): the prefix every presence subject starts with.
func (s Subjects) PresencePrefix() string { return s.Prefix + ".presence." }

// DLQ is the subject failed deliveries of kind (e.g. "notify") are kept under, in
// DLQStream, until an operator replays them.
func (s Subjects) DLQ(kind string) string { return s.Prefix + ".dlq." + kind }

// DLQAll matches every dead-letter subject: the subjects of DLQStream.
func (s Subjects) DLQAll() string { return s.Prefix + ".dlq.>" }

// Durable consumer names. They live here, with the streams they read, because more
// than the role that creates a consumer reads it: history reads the persister's
// position to know which log tail the store lacks, readiness and bench read its lag,
// and the NATS permission sets (natsutil.Permissions) name them.
const (
	// PersisterConsumer is the NATTER_LOG consumer all persister instances share.
	PersisterConsumer = "PERSISTER"
	// NotifierConsumer is the NATTER_LOG consumer all notifier instances share.
	NotifierConsumer = "NOTIFIER"
	// NotifierWindowConsumer is the notifier's consumer of coalescing-window expiries
	// (on the stream of its window bucket).
	NotifierWindowConsumer = "NOTIFIER_WINDOWS"
	// PresenceConsumer is the consumer of lease and grace-timer expiries that all
	// presence instances share (on the presence bucket's stream).
	PresenceConsumer = "PRESENCE"
)

// SequencerConsumer is the NATTER_IN consumer of ingress partition p.
func SequencerConsumer(p int) string { return "SEQ_" + strconv.Itoa(p) }

// Answers. The sequencer tells the publisher of each ingress message its decision
// (an ack with the chat seq, or the refusal) on a core subject the publisher named
// in the message's protocol.HeaderAnswer. It publishes only under AnswerPrefix, and
// only under the publisher's own branch (AnswerGateway for messages a gateway
// published on In, AnswerService for those a service published on Svc): a header
// can never make the sequencer publish anywhere else.

// AnswerPrefix is the prefix of every answer subject.
func (s Subjects) AnswerPrefix() string { return s.Prefix + ".answer." }

// AnswerGatewayPrefix is the prefix of the answer subjects of gateways' sends.
func (s Subjects) AnswerGatewayPrefix() string { return s.Prefix + ".answer.gw." }

// AnswerServicePrefix is the prefix of the answer subjects of services' sends
// (pkg/publish).
func (s Subjects) AnswerServicePrefix() string { return s.Prefix + ".answer.svc." }

// AnswerAllowed reports whether the sequencer may publish the answer to an ingress
// message of origin (OriginGateway or OriginService) on subject: a subject under
// that origin's answer prefix, with at least one more token, and no wildcard.
func (s Subjects) AnswerAllowed(origin, subject string) bool {
	prefix := s.AnswerGatewayPrefix()
	if origin == OriginService {
		prefix = s.AnswerServicePrefix()
	}
	rest, ok := strings.CutPrefix(subject, prefix)
	if !ok || rest == "" || len(subject) > 256 {
		return false
	}
	for _, tok := range strings.Split(rest, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}
