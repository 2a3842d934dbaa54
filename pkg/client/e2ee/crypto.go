package e2ee

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// The primitives of docs/e2ee.md, "Protocol": every one is the standard library's
// (X25519, Ed25519, HKDF-SHA256, AES-256-GCM); this file only fixes how they are
// combined and which bytes go into each. The TypeScript SDK (pkg/sdk/ts/src/e2ee.ts)
// does the same with WebCrypto, and testdata/vectors.json pins both byte for byte.

// Labels separate the uses of HKDF and of signatures (domain separation).
const (
	labelBox  = "natter-e2ee-v1/box"
	labelMsg  = "natter-e2ee-v1/msg"
	labelSPK  = "natter-e2ee-v1/spk"
	labelFile = "natter-e2ee-v1/file"
)

// Sizes of key material.
const (
	KeySize    = 32 // X25519 and Ed25519 public keys, chain keys, AES-256 keys
	BundleSize = 64 // an identity bundle: X25519 public || Ed25519 public
	nonceSize  = 12
)

// ErrDecrypt is returned when a ciphertext does not open: wrong key, tampered bytes
// or associated data, or a key the reader does not hold.
var ErrDecrypt = errors.New("e2ee: cannot decrypt")

// ErrSignature is returned when a signature does not verify.
var ErrSignature = errors.New("e2ee: bad signature")

// frame concatenates fields, each preceded by its length as a big-endian uint16, so
// that no two different field lists give the same bytes.
func frame(fields ...[]byte) []byte {
	n := 0
	for _, f := range fields {
		n += 2 + len(f)
	}
	out := make([]byte, 0, n)
	for _, f := range fields {
		if len(f) > 0xffff {
			panic("e2ee: field over 65535 bytes")
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(f)))
		out = append(out, f...)
	}
	return out
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// kdf derives an AES-256 key and a GCM nonce (44 bytes) from secret.
func kdf(secret, salt []byte, info []byte) (key, nonce []byte, err error) {
	okm, err := hkdf.Key(sha256.New, secret, salt, string(info), KeySize+nonceSize)
	if err != nil {
		return nil, nil, fmt.Errorf("e2ee: hkdf: %w", err)
	}
	return okm[:KeySize], okm[KeySize:], nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("e2ee: aes: %w", err)
	}
	return cipher.NewGCM(b)
}

func seal(key, nonce, plaintext, aad []byte) ([]byte, error) {
	a, err := gcm(key)
	if err != nil {
		return nil, err
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

func open(key, nonce, ciphertext, aad []byte) ([]byte, error) {
	a, err := gcm(key)
	if err != nil {
		return nil, err
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Bundle is a device's public identity: its X25519 key (key agreement) and its
// Ed25519 key (signatures), published as identityKey (base64 of the 64 bytes).
type Bundle [BundleSize]byte

// DH returns the X25519 half.
func (b Bundle) DH() []byte { return b[:KeySize] }

// Sig returns the Ed25519 half.
func (b Bundle) Sig() ed25519.PublicKey { return ed25519.PublicKey(b[KeySize:]) }

// Fingerprint is the bundle's SHA-256, in hex groups, for people to compare out of band.
func (b Bundle) Fingerprint() string {
	s := sha256.Sum256(b[:])
	out := make([]byte, 0, 47)
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			out = append(out, ' ')
		}
		out = fmt.Appendf(out, "%02x%02x", s[i], s[i+1])
	}
	return string(out)
}

// spkMessage is what a device signs to vouch for its signed pre-key.
func spkMessage(id uint32, pub []byte) []byte {
	return frame([]byte(labelSPK), be32(id), pub)
}

// SignPreKey signs the signed pre-key id/pub with the device's Ed25519 key.
func SignPreKey(sk ed25519.PrivateKey, id uint32, pub []byte) []byte {
	return ed25519.Sign(sk, spkMessage(id, pub))
}

// VerifyPreKey checks a signed pre-key's signature against the owner's bundle.
func VerifyPreKey(owner Bundle, id uint32, pub, sig []byte) error {
	if len(pub) != KeySize || !ed25519.Verify(owner.Sig(), spkMessage(id, pub), sig) {
		return ErrSignature
	}
	return nil
}

// BoxContext is what a key box is bound to (its associated data): the chat, who
// sends to whom, and the epoch of the sender key it carries.
type BoxContext struct {
	ChatID                     string
	SenderUser, SenderDevice   string
	RecipientUser, RecipientDv string
	Epoch                      uint32
}

func (c BoxContext) aad() []byte {
	return frame([]byte(labelBox), []byte(c.ChatID), []byte(c.SenderUser), []byte(c.SenderDevice),
		[]byte(c.RecipientUser), []byte(c.RecipientDv), be32(c.Epoch))
}

// Recipient is the public half of an X3DH agreement: the recipient device's bundle,
// its signed pre-key and, when the directory had one left, a one-time pre-key.
type Recipient struct {
	Bundle Bundle
	SPK    []byte // X25519 public
	OTK    []byte // X25519 public, nil when none
}

// x3dhSecret is the input keying material: 32 0xFF bytes then DH1..DH3 (DH4).
func x3dhSecret(dhs ...[]byte) []byte {
	ikm := make([]byte, 32, 32+len(dhs)*32)
	for i := range ikm {
		ikm[i] = 0xff
	}
	for _, d := range dhs {
		ikm = append(ikm, d...)
	}
	return ikm
}

func boxInfo(sender, recipient Bundle) []byte {
	info := append([]byte(labelBox), sender[:]...)
	return append(info, recipient[:]...)
}

func x25519(priv *ecdh.PrivateKey, pub []byte) ([]byte, error) {
	p, err := ecdh.X25519().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("e2ee: x25519 public key: %w", err)
	}
	s, err := priv.ECDH(p)
	if err != nil {
		return nil, fmt.Errorf("e2ee: x25519: %w", err)
	}
	return s, nil
}

// SealBox encrypts plaintext (a sender key) for one recipient device, X3DH style:
// DH1 = DH(IK_A, SPK_B), DH2 = DH(EK, IK_B), DH3 = DH(EK, SPK_B), DH4 = DH(EK, OTK_B)
// when there is a one-time key; key and nonce = HKDF(0xFF*32 || DH1..DH4, salt 32
// zero bytes, info label || bundle_A || bundle_B). ek is a fresh ephemeral key, used
// for this box only. It returns the ciphertext.
func SealBox(ik *ecdh.PrivateKey, sender Bundle, ek *ecdh.PrivateKey, to Recipient, ctx BoxContext, plaintext []byte) ([]byte, error) {
	dhs := make([][]byte, 0, 4)
	ikB := to.Bundle.DH()
	for _, p := range []struct {
		k   *ecdh.PrivateKey
		pub []byte
	}{{ik, to.SPK}, {ek, ikB}, {ek, to.SPK}, {ek, to.OTK}} {
		if p.pub == nil {
			continue
		}
		s, err := x25519(p.k, p.pub)
		if err != nil {
			return nil, err
		}
		dhs = append(dhs, s)
	}
	key, nonce, err := kdf(x3dhSecret(dhs...), make([]byte, 32), boxInfo(sender, to.Bundle))
	if err != nil {
		return nil, err
	}
	return seal(key, nonce, plaintext, ctx.aad())
}

// OpenBox is SealBox's reverse on the recipient device: ik, spk and otk (nil when
// the box used none) are its private keys, ekPub the box's ephemeral key.
func OpenBox(ik, spk, otk *ecdh.PrivateKey, self, sender Bundle, ekPub []byte, ctx BoxContext, ciphertext []byte) ([]byte, error) {
	ikA := sender.DH()
	d1, err := x25519(spk, ikA)
	if err != nil {
		return nil, err
	}
	d2, err := x25519(ik, ekPub)
	if err != nil {
		return nil, err
	}
	d3, err := x25519(spk, ekPub)
	if err != nil {
		return nil, err
	}
	dhs := [][]byte{d1, d2, d3}
	if otk != nil {
		d4, err := x25519(otk, ekPub)
		if err != nil {
			return nil, err
		}
		dhs = append(dhs, d4)
	}
	key, nonce, err := kdf(x3dhSecret(dhs...), make([]byte, 32), boxInfo(sender, self))
	if err != nil {
		return nil, err
	}
	return open(key, nonce, ciphertext, ctx.aad())
}

// MsgContext is what a chat message's ciphertext is bound to.
type MsgContext struct {
	ChatID, SenderUser, SenderDevice, MessageID string
	Epoch, Counter                              uint32
}

func (c MsgContext) aad() []byte {
	return frame([]byte(labelMsg), []byte(c.ChatID), []byte(c.SenderUser), []byte(c.SenderDevice),
		[]byte(c.MessageID), be32(c.Epoch), be32(c.Counter))
}

// messageKey derives message n's AES key and nonce from the epoch's chain key:
// HKDF(chainKey, empty salt, label || epoch || n). Each (epoch, n) is used once.
func messageKey(chainKey []byte, epoch, n uint32) (key, nonce []byte, err error) {
	info := append([]byte(labelMsg), be32(epoch)...)
	return kdf(chainKey, nil, append(info, be32(n)...))
}

// SealMessage encrypts payload with the sender key chainKey under ctx and signs
// aad || ciphertext with the sender device's Ed25519 key. It returns both.
func SealMessage(chainKey []byte, sk ed25519.PrivateKey, ctx MsgContext, payload []byte) (ct, sig []byte, err error) {
	key, nonce, err := messageKey(chainKey, ctx.Epoch, ctx.Counter)
	if err != nil {
		return nil, nil, err
	}
	aad := ctx.aad()
	ct, err = seal(key, nonce, payload, aad)
	if err != nil {
		return nil, nil, err
	}
	return ct, ed25519.Sign(sk, append(aad, ct...)), nil
}

// OpenMessage verifies the signature against the sender device's bundle, then
// decrypts. ErrSignature or ErrDecrypt when either fails.
func OpenMessage(chainKey []byte, sender Bundle, ctx MsgContext, ct, sig []byte) ([]byte, error) {
	aad := ctx.aad()
	if !ed25519.Verify(sender.Sig(), append(aad, ct...), sig) {
		return nil, ErrSignature
	}
	key, nonce, err := messageKey(chainKey, ctx.Epoch, ctx.Counter)
	if err != nil {
		return nil, err
	}
	return open(key, nonce, ct, aad)
}

// SealFile encrypts an attachment with its own random 32-byte key (never reused,
// so the nonce is all zeros). The key travels inside the encrypted message.
func SealFile(key, data []byte) ([]byte, error) {
	return seal(key, make([]byte, nonceSize), data, []byte(labelFile))
}

// OpenFile is SealFile's reverse.
func OpenFile(key, data []byte) ([]byte, error) {
	return open(key, make([]byte, nonceSize), data, []byte(labelFile))
}
