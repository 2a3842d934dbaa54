package e2ee

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Errors of Keyring.Open beyond ErrDecrypt and ErrSignature.
var (
	// ErrNoKey: the message's sender key (its device and epoch) never reached this
	// device: it was sent before the device joined, or after the reader left.
	ErrNoKey = errors.New("e2ee: no key for this message")
	// ErrUntrusted: a key distribution names an identity key the directory does not
	// confirm for that user and device.
	ErrUntrusted = errors.New("e2ee: identity key not confirmed by the directory")
	// ErrRevoked: the sending device was revoked before this message.
	ErrRevoked = errors.New("e2ee: message from a revoked device")
	// ErrReplay: the same sender key counter came back under another message ID.
	ErrReplay = errors.New("e2ee: replayed ciphertext")
)

// Lookup returns the identity bundles the key directory holds for user, by device
// (without claiming one-time keys).
type Lookup func(ctx context.Context, user string) (map[string]Bundle, error)

// RecipientDevice is one device a sender key is shared with, as the directory gave it.
type RecipientDevice struct {
	User, Device string
	Keys         Recipient
	SPKID        uint32
	SPKSig       []byte
	OTKID        uint32 // 0: none
}

type peerKey struct{ user, device string }

type recvKey struct {
	chat, user, device string
	epoch              uint32
}

// received is a sender key and the identity bundle confirmed when it arrived: the
// sender's messages under it are verified against that bundle, even after the
// device's key changed.
type received struct {
	chain  []byte
	bundle Bundle
}

type seenKey struct {
	recvKey
	n uint32
}

type senderKey struct {
	epoch   uint32
	chain   []byte
	counter uint32
	stale   bool // a membership or device change happened: rotate before the next send
}

// Keyring is one device's end-to-end state: its Identity, its own sender key per
// chat, the sender keys it received and the identity bundles it has confirmed. It
// does no I/O (Open asks a Lookup). Safe for concurrent use.
type Keyring struct {
	id *Identity

	mu      sync.Mutex // guards the maps below and id's one-time keys
	own     map[string]*senderKey
	recv    map[recvKey]received
	peers   map[peerKey]Bundle
	revoked map[peerKey]uint64 // device revoked at this chat seq (0: in no chat yet seen)
	seen    map[seenKey]string // message ID per used counter (replay guard)
}

// NewKeyring returns an empty keyring for id.
func NewKeyring(id *Identity) *Keyring {
	k := &Keyring{id: id, own: map[string]*senderKey{}, recv: map[recvKey]received{},
		peers: map[peerKey]Bundle{}, revoked: map[peerKey]uint64{}, seen: map[seenKey]string{}}
	k.peers[peerKey{id.UserID, id.DeviceID}] = id.Bundle()
	return k
}

// Identity returns the device's identity.
func (k *Keyring) Identity() *Identity { return k.id }

// NeedsRotation reports whether chat has no current sender key of this device.
func (k *Keyring) NeedsRotation(chat string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.own[chat]
	return s == nil || s.stale
}

// MarkStale makes the next send in chat start a new epoch (after a member left or
// was removed or added, or a member's device was added, changed or revoked).
func (k *Keyring) MarkStale(chat string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.own[chat]; s != nil {
		s.stale = true
	}
}

// ForgetDevice drops a confirmed bundle (its key changed): the next distribution
// from it is checked against the directory again.
func (k *Keyring) ForgetDevice(user, device string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if user == k.id.UserID && device == k.id.DeviceID {
		return
	}
	delete(k.peers, peerKey{user, device})
}

// Revoke records that device was revoked at seq of some chat: its messages after
// that are refused.
func (k *Keyring) Revoke(user, device string, seq uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := peerKey{user, device}
	if old, ok := k.revoked[p]; !ok || seq < old {
		k.revoked[p] = seq
	}
	delete(k.peers, p)
}

// Rotate starts a new epoch of this device's sender key in chat and returns it.
func (k *Keyring) Rotate(chat string) (uint32, error) {
	ck := make([]byte, KeySize)
	if _, err := rand.Read(ck); err != nil {
		return 0, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	epoch := uint32(1)
	if s := k.own[chat]; s != nil {
		epoch = s.epoch + 1
	}
	k.own[chat] = &senderKey{epoch: epoch, chain: ck}
	k.recv[recvKey{chat, k.id.UserID, k.id.DeviceID, epoch}] = received{ck, k.id.Bundle()}
	return epoch, nil
}

// SealKeys returns a KindKeys envelope carrying this device's current sender key
// of chat to each of to (each signed pre-key's signature is checked first).
func (k *Keyring) SealKeys(chat string, to []RecipientDevice) (string, error) {
	k.mu.Lock()
	s := k.own[chat]
	k.mu.Unlock()
	if s == nil {
		return "", fmt.Errorf("e2ee: no sender key in chat %s: Rotate first", chat)
	}
	env := &Envelope{V: 1, Kind: KindKeys, Device: k.id.DeviceID, Epoch: s.epoch, Identity: k.id.Bundle().String()}
	for _, r := range to {
		if err := VerifyPreKey(r.Keys.Bundle, r.SPKID, r.Keys.SPK, r.SPKSig); err != nil {
			return "", fmt.Errorf("e2ee: signed pre-key of %s/%s: %w", r.User, r.Device, err)
		}
		ek, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return "", err
		}
		ctx := BoxContext{ChatID: chat, SenderUser: k.id.UserID, SenderDevice: k.id.DeviceID,
			RecipientUser: r.User, RecipientDv: r.Device, Epoch: s.epoch}
		ct, err := SealBox(k.id.ik, k.id.Bundle(), ek, r.Keys, ctx, s.chain)
		if err != nil {
			return "", fmt.Errorf("e2ee: box for %s/%s: %w", r.User, r.Device, err)
		}
		env.Boxes = append(env.Boxes, Box{User: r.User, Device: r.Device, EK: b64.EncodeToString(ek.PublicKey().Bytes()),
			SPK: r.SPKID, OTK: r.OTKID, CT: b64.EncodeToString(ct)})
	}
	return env.String(), nil
}

// Encrypt returns the KindMessage envelope of payload for messageID in chat under
// this device's current sender key. It fails when NeedsRotation.
func (k *Keyring) Encrypt(chat, messageID string, payload Payload) (string, error) {
	pt, err := json.Marshal(payload)
	if err != nil {
		return "", err
	}
	k.mu.Lock()
	s := k.own[chat]
	if s == nil || s.stale {
		k.mu.Unlock()
		return "", fmt.Errorf("e2ee: chat %s needs a new sender key: Rotate and SealKeys first", chat)
	}
	s.counter++
	ctx := MsgContext{ChatID: chat, SenderUser: k.id.UserID, SenderDevice: k.id.DeviceID, MessageID: messageID,
		Epoch: s.epoch, Counter: s.counter}
	chain := s.chain
	k.mu.Unlock()
	ct, sig, err := SealMessage(chain, k.id.sk, ctx, pt)
	if err != nil {
		return "", err
	}
	return (&Envelope{V: 1, Kind: KindMessage, Device: k.id.DeviceID, Epoch: ctx.Epoch, Counter: ctx.Counter,
		CT: b64.EncodeToString(ct), Sig: b64.EncodeToString(sig)}).String(), nil
}

// Opened is what Open made of an encrypted message.
type Opened struct {
	Envelope *Envelope
	// Payload is the decrypted content of a KindMessage envelope.
	Payload *Payload
	// KeyFrom is set for a KindKeys envelope that carried a key for this device.
	KeyFrom bool
}

// Open decrypts content, the messageId/seq message senderUser sent to chat. A
// KindKeys envelope stores the sender key it carries for this device, after the
// sender's identity bundle is confirmed (cached, or through lookup). Errors:
// ErrNoKey, ErrDecrypt, ErrSignature, ErrUntrusted, ErrRevoked, ErrReplay, or a
// malformed envelope's.
func (k *Keyring) Open(ctx context.Context, chat, senderUser, messageID string, seq uint64, content string, lookup Lookup) (*Opened, error) {
	env, err := ParseEnvelope(content)
	if err != nil {
		return nil, err
	}
	p := peerKey{senderUser, env.Device}
	k.mu.Lock()
	rs, revoked := k.revoked[p]
	k.mu.Unlock()
	if revoked && seq > rs {
		return &Opened{Envelope: env}, ErrRevoked
	}
	if env.Kind == KindKeys {
		return k.openKeys(ctx, chat, senderUser, env, lookup)
	}
	k.mu.Lock()
	rk := recvKey{chat, senderUser, env.Device, env.Epoch}
	r, ok := k.recv[rk]
	k.mu.Unlock()
	if !ok {
		return &Opened{Envelope: env}, ErrNoKey
	}
	ct, err := unb64(env.CT, 0)
	if err != nil {
		return nil, err
	}
	sig, err := unb64(env.Sig, 64)
	if err != nil {
		return nil, err
	}
	pt, err := OpenMessage(r.chain, r.bundle, MsgContext{ChatID: chat, SenderUser: senderUser, SenderDevice: env.Device,
		MessageID: messageID, Epoch: env.Epoch, Counter: env.Counter}, ct, sig)
	if err != nil {
		return &Opened{Envelope: env}, err
	}
	k.mu.Lock()
	sk := seenKey{rk, env.Counter}
	if prev, ok := k.seen[sk]; ok && prev != messageID {
		k.mu.Unlock()
		return &Opened{Envelope: env}, ErrReplay
	}
	k.seen[sk] = messageID
	k.mu.Unlock()
	var pl Payload
	if err := json.Unmarshal(pt, &pl); err != nil {
		return nil, fmt.Errorf("e2ee: payload: %w", err)
	}
	return &Opened{Envelope: env, Payload: &pl}, nil
}

func (k *Keyring) openKeys(ctx context.Context, chat, senderUser string, env *Envelope, lookup Lookup) (*Opened, error) {
	out := &Opened{Envelope: env}
	var box *Box
	for i := range env.Boxes {
		if env.Boxes[i].User == k.id.UserID && env.Boxes[i].Device == k.id.DeviceID {
			box = &env.Boxes[i]
		}
	}
	if box == nil {
		return out, nil // not for this device (or sent by it)
	}
	sender, err := ParseBundle(env.Identity)
	if err != nil {
		return nil, err
	}
	if err := k.confirm(ctx, senderUser, env.Device, sender, lookup); err != nil {
		return out, err
	}
	rk := recvKey{chat, senderUser, env.Device, env.Epoch}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.recv[rk]; ok {
		out.KeyFrom = true
		return out, nil // seen before (history read again)
	}
	var otk *ecdh.PrivateKey
	if box.OTK != 0 {
		if otk = k.id.otks[box.OTK]; otk == nil {
			return out, fmt.Errorf("%w: one-time key %d is not (or no longer) held", ErrNoKey, box.OTK)
		}
	}
	if box.SPK != k.id.spkID {
		return out, fmt.Errorf("%w: signed pre-key %d is not held", ErrNoKey, box.SPK)
	}
	ek, err := unb64(box.EK, KeySize)
	if err != nil {
		return nil, err
	}
	ct, err := unb64(box.CT, 0)
	if err != nil {
		return nil, err
	}
	bctx := BoxContext{ChatID: chat, SenderUser: senderUser, SenderDevice: env.Device,
		RecipientUser: k.id.UserID, RecipientDv: k.id.DeviceID, Epoch: env.Epoch}
	chain, err := OpenBox(k.id.ik, k.id.spk, otk, k.id.Bundle(), sender, ek, bctx, ct)
	if err != nil {
		return out, err
	}
	if len(chain) != KeySize {
		return out, ErrDecrypt
	}
	if box.OTK != 0 {
		delete(k.id.otks, box.OTK) // used once: forward secrecy for this box
	}
	k.recv[rk] = received{chain, sender}
	out.KeyFrom = true
	return out, nil
}

// confirm checks that bundle is user's device's identity: the cached one, or the
// directory's (then cached).
func (k *Keyring) confirm(ctx context.Context, user, device string, bundle Bundle, lookup Lookup) error {
	p := peerKey{user, device}
	k.mu.Lock()
	cached, ok := k.peers[p]
	k.mu.Unlock()
	if ok {
		if cached != bundle {
			return ErrUntrusted
		}
		return nil
	}
	if lookup == nil {
		return ErrUntrusted
	}
	devs, err := lookup(ctx, user)
	if err != nil {
		return fmt.Errorf("e2ee: look up %s: %w", user, err)
	}
	d, ok := devs[device]
	if !ok || !bytes.Equal(d[:], bundle[:]) {
		return ErrUntrusted
	}
	k.mu.Lock()
	k.peers[p] = bundle
	k.mu.Unlock()
	return nil
}
