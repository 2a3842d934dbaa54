// Package livestate is the gateway's presence and typing (docs/presence.md): state
// about users that lives only while they are connected and is never persisted.
//
// Presence reports this gateway's device counts to the presence role, serves
// presence_sub (watching other users' presence) and GET/PUT
// /api/v1/users/{id}/presence. Typing forwards typing indicators to a chat's other
// members and ends them by itself. Both see the gateway only through the small
// interfaces below: what they need from NATS and JetStream, the store, membership
// and block checks, and the connections of this gateway.
package livestate

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/natter-chat/natter/pkg/subjects"
)

// Conn is one client connection of this gateway, as presence and typing see it.
// Conns are compared by identity (a pointer type).
type Conn interface {
	// UserID is the connected user.
	UserID() string
	// Service reports a service token's connection (may watch anyone).
	Service() bool
	// Enqueue queues a live frame (dropped, or the connection closed as a slow
	// consumer, as for any live delivery); it never blocks.
	Enqueue(frame []byte)
	// Send queues a frame that answers the client.
	Send(f *protocol.Frame)
	// Closed reports whether the connection has closed.
	Closed() bool
}

// Local is this gateway's connected users (the hub).
type Local interface {
	// UserIDs returns the users connected here.
	UserIDs() []string
	// DeviceCounts calls fn with a function returning how many connections a user
	// has here; no connection arrives or leaves while fn runs.
	DeviceCounts(fn func(devices func(uid string) int))
}

// NATS is the part of *nats.Conn presence and typing use.
type NATS interface {
	RequestWithContext(ctx context.Context, subj string, data []byte) (*nats.Msg, error)
	ChanSubscribe(subj string, ch chan *nats.Msg) (*nats.Subscription, error)
	Publish(subj string, data []byte) error
	IsClosed() bool
}

// Buckets opens JetStream KV buckets (jetstream.KeyValueManager's KeyValue).
type Buckets interface {
	// KeyValue returns the bucket; jetstream.ErrBucketNotFound if there is none.
	KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error)
}

// UserChats lists a user's chats (store.Store's method).
type UserChats interface {
	UserChats(ctx context.Context, userID string, limit, offset int) ([]store.ChatSummary, error)
}

// MembersPage lists a chat's members (store.Store's method).
type MembersPage interface {
	MembersPage(ctx context.Context, chatID, after string, limit int) ([]store.Member, error)
}

// Membership checks that a user is a member of a chat, through the gateway's
// membership cache.
type Membership interface {
	// IsMember returns nil for a member, else a *protocol.Error (CodeNotMember, or
	// CodeUnavailable when the store cannot answer).
	IsMember(ctx context.Context, chat, user string) error
}

// Blocks reads block lists (briefly cached). Errors are the answer to give the
// client (a *protocol.Error saying to retry).
type Blocks interface {
	// Of returns the users blocker blocks.
	Of(ctx context.Context, blocker string) (map[string]struct{}, error)
	// Blocks reports whether blocker blocks blocked.
	Blocks(ctx context.Context, blocker, blocked string) (bool, error)
}

// PresenceDeps are what Presence needs.
type PresenceDeps struct {
	NC       NATS
	KV       Buckets
	Chats    UserChats
	Members  Membership
	Blocks   Blocks
	Local    Local
	Subjects subjects.Subjects
	// Body bounds the JSON body of PUT /api/v1/users/{id}/presence.
	Body httpx.Body
}

// TypingDeps are what Typing needs.
type TypingDeps struct {
	NC       NATS
	Store    MembersPage
	Members  Membership
	Blocks   Blocks
	Subjects subjects.Subjects
}
