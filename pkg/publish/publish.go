// Package publish lets a backend service put messages into Natter chats straight
// over NATS, without the gateway: a bot's answers, system notices, moderation
// deletes. It publishes onto the service ingress subject <prefix>.svc.<chat>, which
// the NATTER_IN stream stores beside the gateways' ingress (in the chat's
// partition, in order with everything else), and waits for JetStream's
// acknowledgement: once Publish returns nil the message will be sequenced exactly
// once into the chat (or refused by the sequencer, for an edit or delete whose
// target does not allow it, or a chat change), in order with everything else.
//
// A service may post into any chat as any sender, system notices included, but it
// cannot change a chat: a system message carrying a chat change (member_added,
// member_removed, member_left, role_changed, chat_renamed, chat_created) is refused,
// whatever its by says. Chat changes go through the REST chat API, with a service
// token holding the chats:admin scope (docs/backend.md).
//
// The subject contract is in docs/backend.md. The backend NATS user (natter creds
// backend; deploy/nats/accounts.conf) may publish only on the service ingress and
// read nothing of users'. A service that needs answers (acks per message, errors)
// over HTTP instead uses POST /api/v1/chats/{id}/messages with a service token.
package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
)

// ErrInvalid is returned (wrapped) for a message that would be refused: a bad ID,
// content or meta over its limit, meta that is not a JSON object, a bad
// messageType, or an operation without a fitting refId, content or reaction.
var ErrInvalid = errors.New("publish: invalid message")

// Publisher publishes messages for one service. It is safe for concurrent use.
type Publisher struct {
	js      jetstream.Publisher
	subj    subjects.Subjects
	service string
}

// Ack is JetStream's answer to a publish.
type Ack struct {
	// MessageID is the message's ID (generated if the message had none).
	MessageID string
	// Duplicate is true when a message with the same chat and ID had been
	// published already (within nats.dedup-window): it is stored once.
	Duplicate bool
}

// New returns a Publisher for the service named service (a valid ID: it goes in the
// Natter-Service header, for operators reading the stream) on the subjects under
// prefix ("" means the default, "natter"). js needs only to publish; as the backend
// user, connect with nats.CustomInboxPrefix("_INBOX_backend") so the
// acknowledgements can reach it.
func New(js jetstream.Publisher, prefix, service string) (*Publisher, error) {
	if js == nil {
		return nil, errors.New("publish: nil JetStream publisher")
	}
	if !ids.Valid(service) {
		return nil, fmt.Errorf("%w: service name must match ^[A-Za-z0-9_-]{1,64}$", ErrInvalid)
	}
	return &Publisher{js: js, subj: subjects.New(prefix, 1), service: service}, nil
}

// Publish validates m and publishes it, waiting for the acknowledgement (bound it
// with ctx). m.MessageID "" is given a new ID; resending the same m (same chat and
// MessageID) after an error is safe: it is stored once. SenderID is who the message
// appears from: a bot or system user ID of the service's choosing. Seq and
// Timestamp are set by the sequencer; the history-state fields (Edited, Deleted,
// Reactions) are ignored.
//
// It returns an error wrapping ErrInvalid for a message the sequencer would refuse,
// or the JetStream error (nats.ErrTimeout, a permissions violation, ...) when the
// publish was not acknowledged.
func (p *Publisher) Publish(ctx context.Context, m *protocol.Message) (Ack, error) {
	if m.MessageID == "" {
		m.MessageID = ids.New()
	}
	m.Seq, m.Timestamp, m.Edited, m.Deleted, m.Reactions, m.StateSeq = 0, 0, false, false, nil, 0
	if m.MessageType == "" {
		m.MessageType = protocol.TypeText
	}
	if err := Validate(m); err != nil {
		return Ack{}, err
	}
	out := &nats.Msg{Subject: p.subj.Svc(m.ChatID), Data: protocol.EncodeIngress(m), Header: nats.Header{}}
	out.Header.Set(jetstream.MsgIDHeader, protocol.MsgID(m.ChatID, m.MessageID))
	out.Header.Set(protocol.HeaderService, p.service)
	ack, err := p.js.PublishMsg(ctx, out)
	if err != nil {
		return Ack{}, fmt.Errorf("publish %s/%s: %w", m.ChatID, m.MessageID, err)
	}
	return Ack{MessageID: m.MessageID, Duplicate: ack.Duplicate}, nil
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
