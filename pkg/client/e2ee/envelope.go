package e2ee

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// MessageType is the messageType of every user message in an encrypted chat.
const MessageType = "encrypted"

// KeysMessageType is the messageType of a key distribution (a KindKeys envelope):
// the server stores and delivers it like any message but never counts it as
// unread or pushes it. Receivers also take distributions sent as MessageType
// (before this type existed, so history may hold them), and refuse a KindMessage
// envelope sent as KeysMessageType (a message that no badge would count).
const KeysMessageType = "encrypted_keys"

// Envelope kinds (the "t" field).
const (
	KindMessage = "msg"  // a chat message (or an edit's new text) under a sender key
	KindKeys    = "keys" // a sender key distribution: one box per recipient device
)

// Envelope is the content of an encrypted chat's message: a JSON object, opaque to
// the server. docs/e2ee.md, "Envelopes", is its description.
type Envelope struct {
	V      int    `json:"v"`
	Kind   string `json:"t"`
	Device string `json:"dev"`
	Epoch  uint32 `json:"ep"`
	// KindMessage
	Counter uint32 `json:"n,omitempty"`
	CT      string `json:"ct,omitempty"`
	Sig     string `json:"sig,omitempty"`
	// KindKeys
	Identity string `json:"ik,omitempty"` // the sender device's bundle
	Boxes    []Box  `json:"boxes,omitempty"`
}

// Box is one recipient device's copy of a sender key.
type Box struct {
	User   string `json:"u"`
	Device string `json:"dev"`
	EK     string `json:"ek"`            // ephemeral X25519 public key
	SPK    uint32 `json:"spk"`           // id of the signed pre-key used
	OTK    uint32 `json:"otk,omitempty"` // id of the one-time key used; 0: none
	CT     string `json:"ct"`
}

// Payload is the plaintext of a KindMessage envelope.
type Payload struct {
	// Type is "text" or "file".
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
	// File is set for Type "file": the attachment, stored encrypted as opaque media.
	File *FileRef `json:"file,omitempty"`
}

// FileRef points at an encrypted attachment and carries its key.
type FileRef struct {
	MediaID string `json:"id"`
	Key     string `json:"key"` // base64, 32 bytes
	Name    string `json:"name,omitempty"`
	Mime    string `json:"mime,omitempty"`
	Size    int64  `json:"size"` // plaintext bytes
}

var b64 = base64.StdEncoding

// ParseEnvelope decodes content; an error when it is not an envelope of version 1.
func ParseEnvelope(content string) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal([]byte(content), &e); err != nil {
		return nil, fmt.Errorf("e2ee: not an envelope: %w", err)
	}
	if e.V != 1 || (e.Kind != KindMessage && e.Kind != KindKeys) || e.Device == "" {
		return nil, fmt.Errorf("e2ee: unsupported envelope (v %d, t %q)", e.V, e.Kind)
	}
	return &e, nil
}

func (e *Envelope) String() string {
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func unb64(s string, n int) ([]byte, error) {
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("e2ee: base64: %w", err)
	}
	if n > 0 && len(b) != n {
		return nil, fmt.Errorf("e2ee: want %d bytes, got %d", n, len(b))
	}
	return b, nil
}

// ParseBundle decodes an identityKey.
func ParseBundle(s string) (Bundle, error) {
	var b Bundle
	raw, err := unb64(s, BundleSize)
	if err != nil {
		return b, err
	}
	copy(b[:], raw)
	return b, nil
}

// String is the bundle as the directory's identityKey.
func (b Bundle) String() string { return b64.EncodeToString(b[:]) }
