// Package publish lets a backend service put messages into Natter chats straight
// over NATS, without the gateway: a bot's answers, system notices, moderation
// deletes. It publishes onto the service ingress subject <prefix>.svc.<chat>, which
// the NATTER_IN stream stores beside the gateways' ingress (in the chat's
// partition, in order with everything else), and waits for the sequencer's answer
// (pkg/answer): once Publish returns nil the message is sequenced into the chat,
// exactly once for the chat and message ID however often and however late it is
// published again, and Ack.Seq is its place in the chat. A message the sequencer
// refuses (an edit or delete whose target does not allow it, a reply to a message
// that is not there) returns its *protocol.Error.
//
// A service may post into any chat as any sender, system notices included, but it
// cannot change a chat: a system message carrying a chat change (member_added,
// member_removed, member_left, role_changed, chat_renamed, chat_created) is refused,
// whatever its by says. Chat changes go through the REST chat API, with a service
// token holding the chats:admin scope (docs/backend.md).
//
// The subject contract is in docs/backend.md. The backend NATS user (natter creds
// backend; deploy/nats/accounts.conf) may publish only on the service ingress,
// receive the answers under <prefix>.answer.svc, and read nothing of users'. A
// service that talks HTTP instead uses POST /api/v1/chats/{id}/messages with a
// service token: the same answers.
package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/answer"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
)

// ErrInvalid is returned (wrapped) for a message that would be refused: a bad ID,
// content or meta over its limit, meta that is not a JSON object, a bad
// messageType, or an operation without a fitting refId, content or reaction.
var ErrInvalid = errors.New("publish: invalid message")

// ErrNoAnswer is returned (wrapped) when the message was stored in NATTER_IN but the
// sequencer's answer did not come before ctx ended: it will be sequenced; publish
// it again with the same MessageID to learn its seq.
var ErrNoAnswer = errors.New("publish: stored, but not answered in time; publish it again with the same MessageID")

// ErrBusy is returned (wrapped, with JetStream's error) when NATTER_IN is full
// (nats.ingress-max-bytes: the sequencers are behind or stopped): the message was
// not stored; publish it again with the same MessageID later.
var ErrBusy = errors.New("publish: the server is behind (its ingress is full): not stored; publish it again with the same MessageID later")

// storeErr is the error of m's publish that JetStream refused with err.
func storeErr(m *protocol.Message, err error) error {
	if natsutil.IngressFull(err) {
		return fmt.Errorf("publish %s/%s: %w (%w)", m.ChatID, m.MessageID, ErrBusy, err)
	}
	return fmt.Errorf("publish %s/%s: %w", m.ChatID, m.MessageID, err)
}

// Publisher publishes messages for one service. It is safe for concurrent use.
type Publisher struct {
	js      jetstream.Publisher
	subj    subjects.Subjects
	service string
	answers *answer.Waiter
}

// Ack is the sequencer's answer to a publish.
type Ack struct {
	// MessageID is the message's ID (generated if the message had none).
	MessageID string
	// Seq is the message's seq in its chat (for a duplicate, the original's). 0
	// only for an edit, delete or react that changed nothing (not sequenced).
	Seq uint64
	// Duplicate is true when the chat already held a message with this ID
	// (however long ago): nothing new was sequenced.
	Duplicate bool
}

// New returns a Publisher for the service named service (a valid ID: it goes in the
// Natter-Service header, for operators reading the stream) on the subjects under
// prefix ("" means the default, "natter"). js must be a jetstream.JetStream (its
// connection receives the answers, under <prefix>.answer.svc). As the backend
// user, connect with nats.CustomInboxPrefix("_INBOX_backend") so JetStream's
// acknowledgements can reach it.
func New(js jetstream.Publisher, prefix, service string) (*Publisher, error) {
	if js == nil {
		return nil, errors.New("publish: nil JetStream publisher")
	}
	conn, ok := js.(interface{ Conn() *nats.Conn })
	if !ok || conn.Conn() == nil {
		return nil, errors.New("publish: js must be a jetstream.JetStream: the answers come on its connection")
	}
	if !ids.Valid(service) {
		return nil, fmt.Errorf("%w: service name must match ^[A-Za-z0-9_-]{1,64}$", ErrInvalid)
	}
	subj := subjects.New(prefix, 1)
	return &Publisher{js: js, subj: subj, service: service,
		answers: answer.New(conn.Conn(), subj.AnswerServicePrefix(), 0, nil)}, nil
}

// Close stops receiving answers. Publish must not be called after it.
func (p *Publisher) Close() { p.answers.Close() }

// Publish validates m and publishes it, waiting until the sequencer answered (bound
// it with ctx). m.MessageID "" is given a new ID; publishing the same m (same chat
// and MessageID) again, after an error or at any later time, is safe: it is
// sequenced once, and answered with the original seq and Duplicate. SenderID is who
// the message appears from: a bot or system user ID of the service's choosing. Seq
// and Timestamp are set by the sequencer; the history-state fields (Edited,
// Deleted, Reactions) are ignored.
//
// It returns an error wrapping ErrInvalid for a message the sequencer would refuse
// on its face, one wrapping the sequencer's *protocol.Error for a refusal (an
// operation on a message that does not allow it), the JetStream error
// (nats.ErrTimeout, a permissions violation, ...) when the publish was not stored
// (wrapped with ErrBusy when NATTER_IN is full),
// or one wrapping ErrNoAnswer when it was stored but ctx ended before the answer.
func (p *Publisher) Publish(ctx context.Context, m *protocol.Message) (Ack, error) {
	if err := prepare(m); err != nil {
		return Ack{}, err
	}
	got := make(chan *protocol.Frame, 1)
	w, err := p.answers.Expect(m.ChatID, m.MessageID, func(f *protocol.Frame) { got <- f })
	if err != nil {
		return Ack{}, fmt.Errorf("publish %s/%s: %w", m.ChatID, m.MessageID, err)
	}
	defer w.Cancel()
	out := p.ingress(m, w)
	if _, err := p.js.PublishMsg(ctx, out); err != nil {
		return Ack{}, storeErr(m, err)
	}
	select {
	case f := <-got:
		if f.Type == protocol.FrameError {
			return Ack{}, fmt.Errorf("publish %s/%s: refused: %w", m.ChatID, m.MessageID, answer.Err(f))
		}
		return Ack{MessageID: m.MessageID, Seq: f.Seq, Duplicate: f.Duplicate}, nil
	case <-ctx.Done():
		return Ack{}, fmt.Errorf("publish %s/%s: %w (%w)", m.ChatID, m.MessageID, ErrNoAnswer, ctx.Err())
	}
}

// prepare readies m as Publish and PublishBatch publish it: a new ID when it has
// none, the fields the sequencer sets cleared, text by default; then Validate.
func prepare(m *protocol.Message) error {
	if m.MessageID == "" {
		m.MessageID = ids.New()
	}
	m.Seq, m.Timestamp, m.Edited, m.Deleted, m.Reactions, m.StateSeq = 0, 0, false, false, nil, 0
	if m.MessageType == "" {
		m.MessageType = protocol.TypeText
	}
	return Validate(m)
}

// ingress is m as stored in NATTER_IN, answered on w's subject. The answer
// subject is unique to this publish: as its Nats-Msg-Id it lets JetStream drop
// only a retry of this very publish, so a resend of the message reaches the
// sequencer, which answers it with the original seq.
func (p *Publisher) ingress(m *protocol.Message, w *answer.Wait) *nats.Msg {
	out := &nats.Msg{Subject: p.subj.Svc(m.ChatID), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, w.Subject())
	out.Header.Set(protocol.HeaderAnswer, w.Subject())
	out.Header.Set(protocol.HeaderService, p.service)
	return out
}

// Text publishes a text message from sender.
func (p *Publisher) Text(ctx context.Context, chatID, sender, content string) (Ack, error) {
	return p.Publish(ctx, &protocol.Message{ChatID: chatID, SenderID: sender, Content: content, MessageType: protocol.TypeText})
}

// System publishes a system message from sender: content for clients that do not
// know ev, ev as its meta (a notice of the service's own kind, e.g.
// {"event":"maintenance"}). A chat change event (protocol.IsChatChange) is
// refused: it returns an error wrapping ErrInvalid and publishes nothing (the
// sequencer would refuse it too).
func (p *Publisher) System(ctx context.Context, chatID, sender, content string, ev protocol.SystemEvent) (Ack, error) {
	if protocol.IsChatChange(ev.Event) {
		return Ack{}, fmt.Errorf("%w: %s is a chat change: services make those through the REST chat API with the %s scope",
			ErrInvalid, ev.Event, protocol.ScopeChatsAdmin)
	}
	meta, err := json.Marshal(ev)
	if err != nil {
		return Ack{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return p.Publish(ctx, &protocol.Message{ChatID: chatID, SenderID: sender, Content: content,
		MessageType: protocol.TypeSystem, Meta: meta})
}

// Delete deletes message refID of chatID for everyone (moderation): services may
// delete any message.
func (p *Publisher) Delete(ctx context.Context, chatID, sender, refID string) (Ack, error) {
	return p.Publish(ctx, &protocol.Message{ChatID: chatID, SenderID: sender, MessageType: protocol.TypeDelete, RefID: refID})
}

// Validate checks m as the gateway and the sequencer do (protocol.ValidateMessage),
// with MessageType set, as Publish does. It returns an error wrapping ErrInvalid.
func Validate(m *protocol.Message) error {
	if err := protocol.ValidateMessage(m); err != nil {
		var perr *protocol.Error
		if errors.As(err, &perr) {
			return fmt.Errorf("%w: %s", ErrInvalid, perr.Message)
		}
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}
