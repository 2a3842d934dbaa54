package protocol

import (
	"bytes"
	"encoding/json"
)

// CheckEncryption is the one rule of which messages a chat takes, by whether it is
// end-to-end encrypted (docs/e2ee.md); the gateway (WebSocket and REST) and the
// sequencer (for backend services' messages) both call it.
//
// An encrypted chat takes TypeEncrypted (ciphertext), TypeEncryptedKeys (key
// distributions, ciphertext too), edits (ciphertext of the new text), deletes, and
// system messages (the server's and services' metadata:
// membership and key events; users cannot send those anyway). Anything else,
// reactions included, would put plaintext where members expect none: it is refused.
// A chat that is not encrypted refuses both encrypted types, which would be stored
// and shown as unreadable text (or, for key distributions, silently not counted). The error is a CodeBadRequest *Error.
func CheckEncryption(encrypted bool, messageType string) *Error {
	if !encrypted {
		if messageType == TypeEncrypted || messageType == TypeEncryptedKeys {
			return Errorf(CodeBadRequest, "messageType %q is only for end-to-end encrypted chats: this chat is not one", messageType)
		}
		return nil
	}
	switch messageType {
	case TypeEncrypted, TypeEncryptedKeys, TypeEdit, TypeDelete, TypeSystem:
		return nil
	case TypeReact:
		return Errorf(CodeBadRequest, "this chat is end-to-end encrypted: send reactions inside an encrypted message, not as react")
	}
	return Errorf(CodeBadRequest, "this chat is end-to-end encrypted: send messageType %q with ciphertext content, not %q", TypeEncrypted, messageType)
}

// IsKeyEvent reports whether m is a key event (EventDeviceKeysChanged,
// EventDeviceRevoked): a system message the gateway sequences in a user's name
// when one of their devices changes keys. The user did not write it, so, unlike
// their own messages, it does not move their read watermark.
func IsKeyEvent(m *Message) bool {
	if m.MessageType != TypeSystem || !bytes.Contains(m.Meta, []byte(`"device_`)) {
		return false
	}
	var ev struct {
		Event string `json:"event"`
	}
	return json.Unmarshal(m.Meta, &ev) == nil && (ev.Event == EventDeviceKeysChanged || ev.Event == EventDeviceRevoked)
}
