package media

import (
	"context"
	"mime/multipart"
	"net/http"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Encrypted attachments (docs/e2ee.md, upload.go): an upload may name the end-to-end
// encrypted chat it is for, POST /api/v1/media?chatId=<id> (a query parameter, so
// the chat is checked before any byte of the body is read). The bytes are
// ciphertext the gateway neither sniffs nor shows: stored as
// application/octet-stream, downloadable by the chat's current members, always as
// an attachment.

// mediaChatKey is the object metadata key of the chat an upload is bound to.
const mediaChatKey = "chat"

// opaqueMediaType is what an encrypted chat's upload is stored and served as.
const opaqueMediaType = "application/octet-stream"

// mediaChat returns the encrypted chat an upload names ("" for none), or a client
// error: not an ID, not a member (403 not_member, as for a chat that does not
// exist), or a chat that is not end-to-end encrypted (400: media of other chats is
// shared through a message's meta).
func (s *Service) uploadChat(ctx context.Context, r *http.Request, id auth.Identity) (string, error) {
	q := r.URL.Query()
	if !q.Has("chatId") {
		return "", nil
	}
	chat := q.Get("chatId")
	if err := protocol.ValidID("chat", chat); err != nil {
		return "", err
	}
	if id.Service {
		return "", protocol.Errorf(protocol.CodeForbidden, "encrypted attachments are uploaded by members of the chat, with a user's token")
	}
	if err := s.deps.Members.CheckMember(ctx, chat, id.UserID); err != nil {
		return "", err
	}
	enc, known := s.deps.Chats.Encrypted(ctx, chat)
	if !known {
		return "", protocol.Errorf(protocol.CodeUnavailable, "chat lookup failed; retry")
	}
	if !enc {
		return "", protocol.Errorf(protocol.CodeBadRequest,
			"chat %s is not end-to-end encrypted: upload without chatId and share the media with a message's meta {\"mediaId\"}", chat)
	}
	return chat, nil
}

// inspectOpaque is inspectFile for ciphertext: the name checks stand, the type is
// opaqueMediaType whatever the bytes look like. head is what inspectFile read
// already (nil if it read nothing), so no byte is lost.
func inspectOpaque(part *multipart.Part, head []byte) (name, ctype string, _ []byte, err error) {
	name, err = mediaName(part.Header.Get("Content-Disposition"))
	if err != nil {
		return "", "", nil, err
	}
	return name, opaqueMediaType, head, nil
}
