package protocol

// MessageFromSend validates a send (a send frame, or the body of POST
// /api/v1/chats/{id}/messages put in one) from sender and returns its ingress
// message: the send's own rules (messageType defaults to text; system and the
// operations have frames or endpoints of their own), then ValidateMessage, the
// rules every path into NATTER_IN shares.
func MessageFromSend(sender string, f *Frame) (*Message, error) {
	m := &Message{ChatID: f.ChatID, MessageID: f.MessageID, SenderID: sender,
		Content: f.Content, MessageType: f.MessageType, ReplyTo: f.ReplyTo, Meta: f.Meta}
	switch m.MessageType {
	case "":
		m.MessageType = TypeText
	case TypeSystem, TypeEdit, TypeDelete, TypeReact:
		return nil, Errorf(CodeBadRequest, "messageType %q cannot be sent with a send frame", m.MessageType)
	}
	if err := ValidateMessage(m); err != nil {
		return nil, err
	}
	return m, nil
}
