package e2ee

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/natter-chat/natter/pkg/client"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Key events the server sequences into every chat of the user concerned.
const (
	EventDeviceKeysChanged = "device_keys_changed"
	EventDeviceRevoked     = "device_revoked"
)

// maxBoxesPerMessage keeps a key distribution under the content limit (16 KiB): a
// box is about 250 bytes of JSON with long IDs.
const maxBoxesPerMessage = 48

// oneTimeKeyLow and oneTimeKeyBatch: Register tops the directory up to about
// oneTimeKeyBatch when fewer than oneTimeKeyLow are left.
const (
	oneTimeKeyLow   = 10
	oneTimeKeyBatch = 25
)

// Message is a chat message as a Session delivers it: the server's message and,
// for an encrypted one, what it decrypted to (Payload) or why it could not (Err).
// Key distributions are consumed by the Session and not delivered.
type Message struct {
	protocol.Message
	// Payload is the decrypted content of an "encrypted" message or of an edit in an
	// encrypted chat.
	Payload *Payload
	// Err is why an encrypted message did not decrypt (ErrNoKey, ErrUntrusted, ...).
	Err error
	// KeyChange is set for a system event announcing a device's new, changed or
	// revoked identity key: show it to the user.
	KeyChange *KeyChange
}

// KeyChange is a device key event of a chat member.
type KeyChange struct {
	Event, UserID, DeviceID string
}

// Session is an end-to-end encrypting layer over a client.Client: it decrypts what
// Client.Messages delivers (Run) and encrypts what it sends, distributing this
// device's sender key to every member device (the user's other devices included)
// before the first message of a chat and again after each membership or device
// change. Run must be running for the changes to be seen.
type Session struct {
	c   *client.Client
	dir *Directory
	kr  *Keyring
	log *zap.Logger
	out chan Message

	sendMu sync.Mutex // serializes key distributions, so one rotation serves concurrent sends
}

// NewSession joins a client, the REST directory and this device's keyring. Call
// Register once per device (and at each start, to top one-time keys up), then Run.
func NewSession(c *client.Client, dir *Directory, kr *Keyring, log *zap.Logger) *Session {
	if log == nil {
		log = zap.NewNop()
	}
	return &Session{c: c, dir: dir, kr: kr, log: log, out: make(chan Message, 1024)}
}

// Keyring returns the session's keyring.
func (s *Session) Keyring() *Keyring { return s.kr }

// Directory returns the session's REST directory.
func (s *Session) Directory() *Directory { return s.dir }

// Messages delivers every chat message in order, decrypted where encrypted.
func (s *Session) Messages() <-chan Message { return s.out }

// Register publishes the device's keys when publish is set (a new device, or after
// replacing its keys), else only tops its one-time keys up.
func (s *Session) Register(ctx context.Context, publish bool) error {
	id := s.kr.Identity()
	if publish {
		s.kr.mu.Lock()
		keys, err := id.Publish(oneTimeKeyBatch)
		s.kr.mu.Unlock()
		if err != nil {
			return err
		}
		_, err = s.dir.PutDevice(ctx, id.DeviceID, keys)
		return err
	}
	n, err := s.dir.AddOneTimeKeys(ctx, id.DeviceID, nil)
	if err != nil || n >= oneTimeKeyLow {
		return err
	}
	s.kr.mu.Lock()
	more, err := id.NewOneTimeKeys(oneTimeKeyBatch - n)
	s.kr.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = s.dir.AddOneTimeKeys(ctx, id.DeviceID, more)
	return err
}

// Run decrypts Client.Messages onto Messages until ctx ends or the client's channel closes.
func (s *Session) Run(ctx context.Context) error {
	defer close(s.out)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-s.c.Messages():
			if !ok {
				return nil
			}
			out, deliver := s.handle(ctx, m)
			if !deliver {
				continue
			}
			select {
			case s.out <- out:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// handle applies one message to the keyring; deliver false for key distributions.
func (s *Session) handle(ctx context.Context, m protocol.Message) (Message, bool) {
	out := Message{Message: m}
	switch {
	case m.MessageType == protocol.TypeSystem:
		var ev struct {
			Event    string `json:"event"`
			UserID   string `json:"userId"`
			DeviceID string `json:"deviceId"`
		}
		if json.Unmarshal(m.Meta, &ev) != nil {
			return out, true
		}
		switch ev.Event {
		case protocol.EventMemberAdded, protocol.EventMemberRemoved, protocol.EventMemberLeft,
			protocol.EventMembersAdded, protocol.EventMembersRemoved:
			s.kr.MarkStale(m.ChatID)
		case EventDeviceKeysChanged:
			s.kr.ForgetDevice(ev.UserID, ev.DeviceID)
			s.kr.MarkStale(m.ChatID)
			out.KeyChange = &KeyChange{Event: ev.Event, UserID: ev.UserID, DeviceID: ev.DeviceID}
		case EventDeviceRevoked:
			s.kr.Revoke(ev.UserID, ev.DeviceID, m.Seq)
			s.kr.MarkStale(m.ChatID)
			out.KeyChange = &KeyChange{Event: ev.Event, UserID: ev.UserID, DeviceID: ev.DeviceID}
		}
	case m.MessageType == KeysMessageType:
		if env, err := ParseEnvelope(m.Content); err != nil || env.Kind != KindKeys {
			s.log.Warn("key distribution refused: not a keys envelope", zap.String("chat_id", m.ChatID), zap.Uint64("seq", m.Seq),
				zap.String("user_id", m.SenderID))
			return out, false
		}
		if _, err := s.kr.Open(ctx, m.ChatID, m.SenderID, m.MessageID, m.Seq, m.Content, s.dir.Lookup); err != nil {
			s.log.Warn("key distribution refused", zap.String("chat_id", m.ChatID), zap.Uint64("seq", m.Seq),
				zap.String("user_id", m.SenderID), zap.Error(err))
		}
		return out, false
	case m.MessageType == MessageType || (m.MessageType == protocol.TypeEdit && m.Content != ""):
		o, err := s.kr.Open(ctx, m.ChatID, m.SenderID, BoundID(m), m.Seq, m.Content, s.dir.Lookup)
		if o != nil && o.Envelope != nil && o.Envelope.Kind == KindKeys {
			if err != nil {
				s.log.Warn("key distribution refused", zap.String("chat_id", m.ChatID), zap.Uint64("seq", m.Seq),
					zap.String("user_id", m.SenderID), zap.Error(err))
			}
			return out, false
		}
		out.Err = err
		if o != nil {
			out.Payload = o.Payload
		}
	}
	return out, true
}

// BoundID is the message ID m's ciphertext is bound to: its own, or for an edit the
// ID of the message it edits. So the state history shows for an edited message (the
// original's ID with the edit's content) opens like the live edit does.
func BoundID(m protocol.Message) string {
	if m.MessageType == protocol.TypeEdit {
		return m.RefID
	}
	return m.MessageID
}

// ensureKeys distributes a new sender key in chat when it needs one.
func (s *Session) ensureKeys(ctx context.Context, chat string) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.kr.NeedsRotation(chat) {
		return nil
	}
	to, err := s.recipients(ctx, chat)
	if err != nil {
		return err
	}
	if _, err := s.kr.Rotate(chat); err != nil {
		return err
	}
	for start := 0; start < len(to); start += maxBoxesPerMessage { // no other device: nobody to tell
		env, err := s.kr.SealKeys(chat, to[start:min(start+maxBoxesPerMessage, len(to))])
		if err != nil {
			s.kr.MarkStale(chat)
			return err
		}
		if _, err := s.c.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameSend, ChatID: chat, MessageType: KeysMessageType, Content: env}); err != nil {
			s.kr.MarkStale(chat)
			return fmt.Errorf("e2ee: send keys to %s: %w", chat, err)
		}
	}
	return nil
}

// recipients are the devices of chat's members other than this one, each with a
// freshly claimed one-time key where the directory had one. A device whose signed
// pre-key does not verify is left out (and logged).
func (s *Session) recipients(ctx context.Context, chat string) ([]RecipientDevice, error) {
	members, err := s.dir.Members(ctx, chat)
	if err != nil {
		return nil, err
	}
	me := s.kr.Identity()
	var to []RecipientDevice
	for _, u := range members {
		devs, err := s.dir.Devices(ctx, u, true)
		if err != nil {
			var pe *protocol.Error
			if errors.As(err, &pe) && pe.Code == protocol.CodeNotFound {
				continue // a member with no devices yet
			}
			return nil, err
		}
		for _, d := range devs {
			if u == me.UserID && d.DeviceID == me.DeviceID {
				continue
			}
			r, err := recipientOf(u, d)
			if err != nil {
				s.log.Warn("device left out of the key distribution", zap.String("chat_id", chat),
					zap.String("user_id", u), zap.String("device_id", d.DeviceID), zap.Error(err))
				continue
			}
			to = append(to, r)
		}
	}
	return to, nil
}

func recipientOf(user string, d DirectoryDevice) (RecipientDevice, error) {
	b, err := ParseBundle(d.IdentityKey)
	if err != nil {
		return RecipientDevice{}, err
	}
	spk, err := unb64(d.SignedPreKey.Key, KeySize)
	if err != nil {
		return RecipientDevice{}, err
	}
	sig, err := unb64(d.SignedPreKey.Signature, 64)
	if err != nil {
		return RecipientDevice{}, err
	}
	if err := VerifyPreKey(b, d.SignedPreKey.ID, spk, sig); err != nil {
		return RecipientDevice{}, err
	}
	r := RecipientDevice{User: user, Device: d.DeviceID, Keys: Recipient{Bundle: b, SPK: spk}, SPKID: d.SignedPreKey.ID, SPKSig: sig}
	if d.OneTimeKey != nil {
		otk, err := unb64(d.OneTimeKey.Key, KeySize)
		if err != nil {
			return RecipientDevice{}, err
		}
		r.Keys.OTK, r.OTKID = otk, d.OneTimeKey.ID
	}
	return r, nil
}

// Send encrypts payload and sends it to chat; it returns the ack.
func (s *Session) Send(ctx context.Context, chat string, payload Payload) (*protocol.Frame, error) {
	return s.sendEncrypted(ctx, &protocol.Frame{Type: protocol.FrameSend, ChatID: chat, MessageType: MessageType}, payload)
}

// SendText sends text to chat, encrypted.
func (s *Session) SendText(ctx context.Context, chat, text string) (*protocol.Frame, error) {
	return s.Send(ctx, chat, Payload{Type: "text", Text: text})
}

// Edit replaces the text of this user's message refID, encrypted.
func (s *Session) Edit(ctx context.Context, chat, refID, text string) (*protocol.Frame, error) {
	return s.sendEncrypted(ctx, &protocol.Frame{Type: protocol.FrameEdit, ChatID: chat, RefID: refID}, Payload{Type: "text", Text: text})
}

func (s *Session) sendEncrypted(ctx context.Context, f *protocol.Frame, payload Payload) (*protocol.Frame, error) {
	if err := s.ensureKeys(ctx, f.ChatID); err != nil {
		return nil, err
	}
	f.MessageID = ids.New()
	bound := f.MessageID
	if f.Type == protocol.FrameEdit {
		bound = f.RefID
	}
	env, err := s.kr.Encrypt(f.ChatID, bound, payload)
	if err != nil {
		return nil, err
	}
	f.Content = env
	return s.c.SendFrame(ctx, f)
}

// Delete deletes this user's message refID for everyone (a delete carries no content).
func (s *Session) Delete(ctx context.Context, chat, refID string) (*protocol.Frame, error) {
	return s.c.SendFrame(ctx, &protocol.Frame{Type: protocol.FrameDelete, ChatID: chat, RefID: refID})
}

// SendFile encrypts data under a fresh key, uploads the ciphertext as opaque media
// of chat and sends a message carrying its reference and key.
func (s *Session) SendFile(ctx context.Context, chat, name, mime, caption string, data []byte) (*protocol.Frame, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	ct, err := SealFile(key, data)
	if err != nil {
		return nil, err
	}
	id, err := s.dir.Upload(ctx, chat, ct)
	if err != nil {
		return nil, err
	}
	return s.Send(ctx, chat, Payload{Type: "file", Text: caption,
		File: &FileRef{MediaID: id, Key: b64.EncodeToString(key), Name: name, Mime: mime, Size: int64(len(data))}})
}

// Download fetches and decrypts an attachment.
func (s *Session) Download(ctx context.Context, f *FileRef) ([]byte, error) {
	key, err := unb64(f.Key, KeySize)
	if err != nil {
		return nil, err
	}
	ct, err := s.dir.Download(ctx, f.MediaID)
	if err != nil {
		return nil, err
	}
	return OpenFile(key, ct)
}
