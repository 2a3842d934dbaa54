package natsutil

import (
	"sort"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/natter-chat/natter/pkg/subjects"
)

// NATS users of a Natter deployment. Each role connects as the user of its name; a
// backend service (pkg/publish) as UserBackend; UserAdmin has every right of the
// account and is for Natter's own setup connection and operators' tools (natter
// bench, stream inspection), never for a role or a service.
const (
	UserAdmin     = "admin"
	UserGateway   = "gateway"
	UserSequencer = "sequencer"
	UserPersister = "persister"
	UserNotifier  = "notifier"
	UserPresence  = "presence"
	UserBackend   = "backend"
)

// Users lists every user Natter generates credentials for, admin first.
var Users = []string{UserAdmin, UserGateway, UserSequencer, UserPersister, UserNotifier, UserPresence, UserBackend}

// InboxPrefix is the reply-subject prefix user's connections use
// (nats.CustomInboxPrefix): each user may subscribe only to its own, so no user
// reads another's replies (JetStream API answers, acks, KV values).
func InboxPrefix(user string) string { return "_INBOX_" + user }

// Names of what the roles keep in JetStream, as they appear in permissions.
const (
	largeStream   = "KV_" + LargeChatsBucket
	sharesStream  = "KV_" + MediaSharesBucket
	usageStream   = "KV_" + MediaUsageBucket
	mediaStream   = "OBJ_" + MediaBucket
	deniedStream  = "KV_" + DeniedBucket
	presenceKV    = "presence" // presencekv.Bucket (natsutil cannot import it: import cycle)
	windowsKV     = "notify"   // notifier.WindowBucket
	jsAPI         = "$JS.API."
	persisterName = subjects.PersisterConsumer
	notifierName  = subjects.NotifierConsumer
)

// Permissions returns the publish and subscribe permissions of user with subjects
// s: allow lists, everything else denied; nil for UserAdmin (all of the account) and
// for an unknown user. The sets are the least each role needs (docs/security.md,
// "NATS principals", says why each entry is there); pkg/e2e's least-privilege tests
// run every role with exactly these and prove the denials. deploy/nats/accounts.conf
// holds the same sets for an external cluster (deploy_test.go keeps them equal).
func Permissions(s subjects.Subjects, user string) *server.Permissions {
	p := s.Prefix + "."
	in, log := subjects.InStream, subjects.LogStream
	// Every role: read-only metadata of the shared streams (the start-up wait for
	// them and the consumer-lag metrics, which also list the notifier's window
	// consumer), its own inbox, JetStream flow control.
	common := []string{
		jsAPI + "INFO", // account limits and usage, read by KV and stream setup
		jsAPI + "STREAM.INFO." + in, jsAPI + "STREAM.INFO." + log, jsAPI + "STREAM.INFO.KV_" + windowsKV,
		jsAPI + "CONSUMER.LIST." + in, jsAPI + "CONSUMER.LIST." + log, jsAPI + "CONSUMER.LIST.KV_" + windowsKV,
	}
	// Reading the log's tail (pkg/history, the persister's trim): direct gets and
	// short-lived consumers with server-chosen names (ReadBatch). The durable
	// consumers of the persister and the notifier are denied to everyone else: a
	// reader must not reconfigure or delete them.
	logReader := []string{
		jsAPI + "DIRECT.GET." + log, jsAPI + "DIRECT.GET." + log + ".>", jsAPI + "STREAM.MSG.GET." + log,
		jsAPI + "CONSUMER.CREATE." + log + ".>", jsAPI + "CONSUMER.MSG.NEXT." + log + ".>",
		jsAPI + "CONSUMER.DELETE." + log + ".>",
		jsAPI + "CONSUMER.INFO." + log + "." + persisterName,
	}
	durables := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, jsAPI+"CONSUMER.CREATE."+log+"."+n, jsAPI+"CONSUMER.CREATE."+log+"."+n+".>",
				jsAPI+"CONSUMER.DURABLE.CREATE."+log+"."+n, jsAPI+"CONSUMER.DELETE."+log+"."+n)
		}
		return out
	}
	var pub, sub, denyPub []string
	responses := false
	switch user {
	case UserGateway:
		pub = []string{
			p + "in.*",                       // client sends and admin-approved chat changes
			p + "user.*",                     // receipts and typing to each member's devices
			p + "typing.*",                   // typing for large chats
			p + "hb",                         // presence reports (requests to the presence role)
			p + "blocks",                     // block list changes (pkg/blockchanges)
			"$KV." + LargeChatsBucket + ".*", // a chat crossing the large threshold at once
			"$KV." + MediaSharesBucket + ".>",
			"$O." + MediaBucket + ".>", // uploads: chunks and object metadata
			"$JS.FC.>",
			// Its own buckets (media), created and updated at start.
			jsAPI + "STREAM.CREATE." + mediaStream, jsAPI + "STREAM.UPDATE." + mediaStream,
			jsAPI + "STREAM.INFO." + mediaStream, jsAPI + "STREAM.PURGE." + mediaStream,
			jsAPI + "STREAM.CREATE." + sharesStream, jsAPI + "STREAM.UPDATE." + sharesStream,
			jsAPI + "STREAM.INFO." + sharesStream,
			jsAPI + "DIRECT.GET." + sharesStream, jsAPI + "DIRECT.GET." + sharesStream + ".>", jsAPI + "STREAM.MSG.GET." + sharesStream,
			jsAPI + "CONSUMER.CREATE." + sharesStream + ".>", jsAPI + "CONSUMER.DELETE." + sharesStream + ".>", // listing a media's shares
			// Media usage per user and unshared uploads (gateway/media/quota.go): read,
			// compare-and-set, listed by the sweep of expired uploads.
			"$KV." + MediaUsageBucket + ".>",
			jsAPI + "STREAM.CREATE." + usageStream, jsAPI + "STREAM.UPDATE." + usageStream,
			jsAPI + "STREAM.INFO." + usageStream,
			jsAPI + "DIRECT.GET." + usageStream, jsAPI + "DIRECT.GET." + usageStream + ".>", jsAPI + "STREAM.MSG.GET." + usageStream,
			jsAPI + "CONSUMER.CREATE." + usageStream + ".>", jsAPI + "CONSUMER.DELETE." + usageStream + ".>",
			jsAPI + "DIRECT.GET." + mediaStream, jsAPI + "DIRECT.GET." + mediaStream + ".>", jsAPI + "STREAM.MSG.GET." + mediaStream,
			jsAPI + "CONSUMER.CREATE." + mediaStream + ".>", // object downloads (ordered consumers)
			jsAPI + "CONSUMER.DELETE." + mediaStream + ".>",

			// Erased accounts (gateway/denylist.go): created at start, watched, and
			// written by the admin erase API.
			"$KV." + DeniedBucket + ".*",
			jsAPI + "STREAM.CREATE." + deniedStream, jsAPI + "STREAM.UPDATE." + deniedStream,
			jsAPI + "STREAM.INFO." + deniedStream,
			jsAPI + "CONSUMER.CREATE." + deniedStream + ".>", jsAPI + "CONSUMER.DELETE." + deniedStream + ".>",
			// Large chats: watch the bucket.
			jsAPI + "STREAM.INFO." + largeStream,
			jsAPI + "CONSUMER.CREATE." + largeStream + ".>", jsAPI + "CONSUMER.DELETE." + largeStream + ".>",
			// Presence reads.
			jsAPI + "STREAM.INFO.KV_" + presenceKV,
			jsAPI + "DIRECT.GET.KV_" + presenceKV, jsAPI + "DIRECT.GET.KV_" + presenceKV + ".>", jsAPI + "STREAM.MSG.GET.KV_" + presenceKV,
		}
		// History: the log's hot tail, merged with the store up to the persister.
		pub = append(pub, logReader...)
		denyPub = durables(persisterName, notifierName)
		// Its sends' answers from the sequencer (gateway/answers.go).
		sub = []string{p + "user.*", p + "log.*", p + "presence.*", s.AnswerGatewayPrefix() + ">"}
	case UserSequencer:
		pub = []string{
			p + "log.*",  // the append (with the expected-last-sequence fence)
			p + "user.*", // fan-out and rejections
			// Each ingress message's answer, on the subject its publisher named, which
			// the sequencer checks is under this prefix (subjects.AnswerAllowed).
			s.AnswerPrefix() + ">",
			"$KV." + LargeChatsBucket + ".*",
			"$JS.ACK." + in + ".>",
			// It owns the ingress and log streams and the large-chats bucket.
			jsAPI + "STREAM.CREATE." + in, jsAPI + "STREAM.UPDATE." + in,
			jsAPI + "STREAM.CREATE." + log, jsAPI + "STREAM.UPDATE." + log,
			jsAPI + "STREAM.CREATE." + largeStream, jsAPI + "STREAM.UPDATE." + largeStream,
			jsAPI + "STREAM.INFO." + largeStream,
			jsAPI + "STREAM.PURGE." + in, // acked ingress, in bulk (sequencer/purge.go)
			jsAPI + "CONSUMER.CREATE." + in + ".>", jsAPI + "CONSUMER.DURABLE.CREATE." + in + ".>",
			jsAPI + "CONSUMER.INFO." + in + ".>", jsAPI + "CONSUMER.MSG.NEXT." + in + ".>",
			jsAPI + "CONSUMER.UNPIN." + in + ".>",
			jsAPI + "DIRECT.GET." + in, jsAPI + "DIRECT.GET." + in + ".>", jsAPI + "STREAM.MSG.GET." + in,
		}
		pub = append(pub, logReader...) // history, for references of edits and replies
		denyPub = durables(persisterName, notifierName)
		sub = []string{p + "blocks"} // block list changes the gateways announce (pkg/blockchanges)
	case UserPersister:
		pub = []string{
			"$JS.ACK." + log + "." + persisterName + ".>",
			jsAPI + "CONSUMER.CREATE." + log + "." + persisterName + ".>",
			jsAPI + "CONSUMER.DURABLE.CREATE." + log + "." + persisterName,
			jsAPI + "CONSUMER.INFO." + log + "." + persisterName,
			jsAPI + "CONSUMER.MSG.NEXT." + log + "." + persisterName,
			jsAPI + "STREAM.PURGE." + log, // trims the log below what the store holds
		}
		pub = append(pub, logReader...)
		denyPub = durables(notifierName)
	case UserNotifier:
		pub = []string{
			p + "notify.*", // notifications for backend services
			p + "dlq.>",    // failed webhook deliveries, kept for replay
			"$KV." + windowsKV + ".>",
			"$JS.ACK." + log + "." + notifierName + ".>",
			"$JS.ACK.KV_" + windowsKV + ".>",
			"$JS.FC.>",
			jsAPI + "STREAM.CREATE." + subjects.DLQStream, jsAPI + "STREAM.UPDATE." + subjects.DLQStream,
			jsAPI + "STREAM.INFO." + subjects.DLQStream,
			jsAPI + "STREAM.CREATE.KV_" + windowsKV, jsAPI + "STREAM.UPDATE.KV_" + windowsKV,
			jsAPI + "STREAM.INFO.KV_" + windowsKV,
			jsAPI + "DIRECT.GET.KV_" + windowsKV, jsAPI + "DIRECT.GET.KV_" + windowsKV + ".>", jsAPI + "STREAM.MSG.GET.KV_" + windowsKV,
			jsAPI + "CONSUMER.CREATE.KV_" + windowsKV + ".>", jsAPI + "CONSUMER.INFO.KV_" + windowsKV + ".>",
			jsAPI + "CONSUMER.MSG.NEXT.KV_" + windowsKV + ".>",
			jsAPI + "CONSUMER.CREATE." + log + "." + notifierName + ".>",
			jsAPI + "CONSUMER.DURABLE.CREATE." + log + "." + notifierName,
			jsAPI + "CONSUMER.INFO." + log + "." + notifierName,
			jsAPI + "CONSUMER.MSG.NEXT." + log + "." + notifierName,
			jsAPI + "DIRECT.GET." + log, jsAPI + "DIRECT.GET." + log + ".>", jsAPI + "STREAM.MSG.GET." + log,
			// Presence: it may create the bucket (as the presence role does), reads and
			// watches it.
			jsAPI + "STREAM.CREATE.KV_" + presenceKV, jsAPI + "STREAM.UPDATE.KV_" + presenceKV,
			jsAPI + "STREAM.INFO.KV_" + presenceKV,
			jsAPI + "DIRECT.GET.KV_" + presenceKV, jsAPI + "DIRECT.GET.KV_" + presenceKV + ".>", jsAPI + "STREAM.MSG.GET.KV_" + presenceKV,
			jsAPI + "CONSUMER.CREATE.KV_" + presenceKV + ".>", jsAPI + "CONSUMER.DELETE.KV_" + presenceKV + ".>",
		}
		// Unread counts merge the log tail (pkg/history), as the gateway's reads do.
		pub = append(pub, logReader...)
		denyPub = durables(persisterName)
		sub = []string{p + "blocks"} // block list changes the gateways announce (pkg/blockchanges)
	case UserPresence:
		pub = []string{
			p + "presence.*", // presence changes
			"$KV." + presenceKV + ".>",
			"$JS.ACK.KV_" + presenceKV + ".>",
			"$JS.FC.>",
			jsAPI + "STREAM.CREATE.KV_" + presenceKV, jsAPI + "STREAM.UPDATE.KV_" + presenceKV,
			jsAPI + "STREAM.INFO.KV_" + presenceKV,
			jsAPI + "DIRECT.GET.KV_" + presenceKV, jsAPI + "DIRECT.GET.KV_" + presenceKV + ".>", jsAPI + "STREAM.MSG.GET.KV_" + presenceKV,
			jsAPI + "CONSUMER.CREATE.KV_" + presenceKV + ".>", jsAPI + "CONSUMER.DURABLE.CREATE.KV_" + presenceKV + ".>",
			jsAPI + "CONSUMER.INFO.KV_" + presenceKV + ".>", jsAPI + "CONSUMER.MSG.NEXT.KV_" + presenceKV + ".>",
			jsAPI + "CONSUMER.DELETE.KV_" + presenceKV + ".>",
		}
		sub = []string{p + "hb"}
		responses = true // answers the gateways' presence reports
	case UserBackend:
		// Publish onto the service ingress subjects only; the JetStream acks come back
		// on its inbox, the sequencer's answers under the service answer prefix
		// (pkg/publish). No JetStream API, no user, log, presence or typing subjects.
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{s.SvcAll()}},
			Subscribe: &server.SubjectPermission{Allow: []string{InboxPrefix(user) + ".>", s.AnswerServicePrefix() + ">"}},
		}
	default:
		return nil
	}
	pub = append(pub, common...)
	sub = append(sub, InboxPrefix(user)+".>")
	sort.Strings(pub)
	sort.Strings(sub)
	sort.Strings(denyPub)
	perms := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: dedup(pub), Deny: denyPub},
		Subscribe: &server.SubjectPermission{Allow: dedup(sub)},
	}
	if responses {
		perms.Response = &server.ResponsePermission{MaxMsgs: 1}
	}
	return perms
}

func dedup(in []string) []string {
	out := in[:0]
	for i, v := range in {
		if i == 0 || v != in[i-1] {
			out = append(out, v)
		}
	}
	return out
}
