package store

// MessageKey names a message by its chat and its client-chosen ID: what the
// sequencer's exactly-once check is keyed by (a (chat, messageId) is sequenced
// once, however often and however late it is sent again).
type MessageKey struct {
	ChatID    string
	MessageID string
}
