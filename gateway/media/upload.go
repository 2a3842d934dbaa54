package media

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// mediaInfo is the answer to an upload.
type mediaInfo struct {
	ID          string `json:"id"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Name        string `json:"name"`
	// ChatID is the encrypted chat the upload is bound to (e2ee.go).
	ChatID string `json:"chatId,omitempty"`
}

var errMediaTooLarge = errors.New("media over the size limit")

// capReader reads r and fails with errMediaTooLarge once more than left bytes come.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errMediaTooLarge
	}
	return n, err
}

// Upload serves POST /api/v1/media: the file in form field "file", streamed into
// the media bucket, answered 201 with its mediaInfo; ?chatId= binds it to an
// end-to-end encrypted chat (e2ee.go).
func (s *Service) Upload(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	if err := s.uploads.allow(id.UserID); err != nil { // quota.go
		httpx.Refuse(w, err.(*protocol.Error))
		return
	}
	chat, err := s.uploadChat(ctx, r, id) // e2ee.go
	if err != nil {
		s.fail(w, err)
		return
	}
	limit := s.cfg.MaxBytes
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, `the body must be multipart/form-data with the file in field "file"`))
		return
	}
	if r.ContentLength > limit+multipartSlack {
		s.fail(w, protocol.Errorf(protocol.CodeTooLarge, "media over %d bytes", limit))
		return
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, limit+multipartSlack), params["boundary"])
	part, err := filePart(mr)
	if err != nil {
		s.failMedia(w, uploadError(err, limit))
		return
	}
	info, err := s.storeMedia(ctx, id.UserID, part, limit, chat)
	if err != nil {
		if errors.Is(err, errOverQuota) {
			err = quotaExceeded(s.cfg.UserQuota)
		}
		s.failMedia(w, uploadError(err, limit))
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, info)
}

// filePart returns the form's part named "file", skipping (and reading through)
// the others. No such part is a bad_request; a malformed body an error for
// uploadError.
func filePart(mr *multipart.Reader) (*multipart.Part, error) {
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, protocol.Errorf(protocol.CodeBadRequest, `no "file" field in the form`)
		}
		if err != nil {
			return nil, err
		}
		if part.FormName() == "file" {
			return part, nil
		}
		if _, err := io.Copy(io.Discard, part); err != nil { // other fields are ignored (bounded by the caller's reader)
			return nil, err
		}
	}
}

// uploadError maps an upload failure to its client error (failMedia writes it).
func uploadError(err error, limit int64) error {
	var pe *protocol.Error
	var mbe *http.MaxBytesError
	var um *unsupportedMedia
	var tpe textproto.ProtocolError // a malformed part header
	switch {
	case errors.As(err, &pe), errors.As(err, &um):
		return err
	case errors.Is(err, errMediaTooLarge), errors.As(err, &mbe):
		return protocol.Errorf(protocol.CodeTooLarge, "media over %d bytes", limit)
	case errors.Is(err, context.Canceled):
		return protocol.Errorf(protocol.CodeBadRequest, "upload interrupted")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &tpe), strings.HasPrefix(err.Error(), "multipart:"):
		return protocol.Errorf(protocol.CodeBadRequest, "malformed multipart body")
	}
	return protocol.Errorf(protocol.CodeUnavailable, "media not stored; retry").WithCause(err)
}

// storeMedia checks one file part and streams it into the media bucket, charging
// its size to the uploader's quota and recording it as unshared (quota.go).
// An upload bound to an encrypted chat (chat not empty) is opaque ciphertext: it is
// stored as application/octet-stream, with the chat, and is never unshared.
// It returns errOverQuota for an upload past the quota.
func (s *Service) storeMedia(ctx context.Context, uploader string, part *multipart.Part, limit int64, chat string) (mediaInfo, error) {
	name, ctype, head, err := inspectFile(part)
	var um *unsupportedMedia
	if chat != "" && (err == nil || errors.As(err, &um)) {
		// Ciphertext may look like anything to a sniffer; it is served as what it is.
		name, ctype, head, err = inspectOpaque(part, head)
	}
	if err != nil {
		return mediaInfo{}, err
	}
	obs, _, err := s.handles(ctx)
	if err != nil {
		return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	usage, err := s.usage(ctx)
	if err != nil {
		s.log.Warn("media usage bucket unavailable", zap.Error(err))
		return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry")
	}
	// Within the quota's remainder: reading stops as soon as the upload passes it.
	quota := s.cfg.UserQuota
	if quota > 0 {
		used, _, err := mediaUsage(ctx, usage, uploader)
		if err != nil {
			s.log.Warn("media usage unavailable", zap.Error(err))
			return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry")
		}
		if used >= quota {
			return mediaInfo{}, errOverQuota
		}
		limit = min(limit, quota-used)
	}
	mediaID := ids.New()
	body := &capReader{r: io.MultiReader(bytes.NewReader(head), part), left: limit}
	meta := map[string]string{"uploader": uploader, "name": name, "contentType": ctype}
	if chat != "" {
		meta[mediaChatKey] = chat
	}
	info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: mediaID, Metadata: meta}, body)
	switch {
	case errors.Is(err, errMediaTooLarge) && limit < s.cfg.MaxBytes:
		return mediaInfo{}, errOverQuota
	case isStorageFull(err):
		s.log.Warn("media bucket full: raise nats.media-max-bytes or lower gateway.media-unshared-ttl")
		return mediaInfo{}, protocol.Errorf(protocol.CodeStorageFull, "media storage is full: retry later")
	case err != nil:
		if !errors.Is(err, errMediaTooLarge) {
			s.log.Warn("media upload failed", zap.String("user_id", uploader), zap.Error(err))
		}
		return mediaInfo{}, err
	}
	// Charged after the bytes are stored, by compare-and-set: concurrent uploads
	// (on any gateway) never take the uploader past the quota together.
	if err := chargeUsage(ctx, usage, uploader, int64(info.Size), quota); err != nil {
		_ = obs.Delete(context.WithoutCancel(ctx), mediaID)
		if errors.Is(err, errOverQuota) {
			return mediaInfo{}, err
		}
		s.log.Warn("media usage not recorded", zap.String("user_id", uploader), zap.Error(err))
		return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media not stored; retry")
	}
	if s.cfg.UnsharedTTL > 0 && chat == "" {
		if _, err := usage.Put(ctx, pendingKey(mediaID), []byte(uploader)); err != nil {
			_ = obs.Delete(context.WithoutCancel(ctx), mediaID)
			_ = chargeUsage(context.WithoutCancel(ctx), usage, uploader, -int64(info.Size), 0)
			s.log.Warn("media upload not recorded as pending", zap.String("user_id", uploader), zap.Error(err))
			return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media not stored; retry")
		}
	}
	return mediaInfo{ID: mediaID, ContentType: ctype, Size: int64(info.Size), SHA256: digestHex(info.Digest), Name: name, ChatID: chat}, nil
}

// inspectFile checks a file part's name and type: it returns the sanitized name
// (mediaName), the type the file is served with (from its first 512 bytes, which it
// returns as head: they are read from part), or a *protocol.Error, an
// *unsupportedMedia or a read error.
func inspectFile(part *multipart.Part) (name, ctype string, head []byte, err error) {
	name, err = mediaName(part.Header.Get("Content-Disposition"))
	if err != nil {
		return "", "", nil, err
	}
	head = make([]byte, 512)
	n, err := io.ReadFull(part, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", "", nil, err
	}
	if n == 0 {
		return "", "", nil, protocol.Errorf(protocol.CodeBadRequest, "the file is empty")
	}
	sniffed := http.DetectContentType(head[:n])
	ctype, ok := allowedMedia[sniffed]
	if !ok {
		return name, "", head[:n], &unsupportedMedia{sniffed} // head: for inspectOpaque
	}
	return name, ctype, head[:n], nil
}

// unsupportedMedia is a content type uploads refuse (HTTP 415).
type unsupportedMedia struct{ sniffed string }

func (u *unsupportedMedia) Error() string { return "unsupported media type " + u.sniffed }

// digestHex turns an object store digest ("SHA-256=<base64url>") into hex.
func digestHex(d string) string {
	b, err := base64.URLEncoding.DecodeString(strings.TrimPrefix(d, "SHA-256="))
	if err != nil {
		return ""
	}
	return hex.EncodeToString(b)
}

// mediaName returns the sanitized filename of a file part's Content-Disposition
// header ("file" if it names none). A name that looks like a path (a separator,
// "." or ".."), or has control or invisible format characters (which could
// disguise its extension), or is not UTF-8 is refused; surrounding space is
// trimmed and a long name is shortened to MaxName bytes, keeping its extension.
func mediaName(disposition string) (string, error) {
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return "", protocol.Errorf(protocol.CodeBadRequest, "malformed Content-Disposition of the file part")
	}
	name := strings.TrimSpace(params["filename"])
	if name == "" {
		return "file", nil
	}
	if !utf8.ValidString(name) || strings.ContainsAny(name, `/\`) || strings.Trim(name, ".") == "" || strings.HasPrefix(name, "..") {
		return "", protocol.Errorf(protocol.CodeBadRequest, "the filename must be a plain name, not a path")
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", protocol.Errorf(protocol.CodeBadRequest, "the filename must not contain control characters")
		}
	}
	if len(name) > MaxName {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
			ext = name[i:]
		}
		base := name[:MaxName-len(ext)]
		for !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
		name = base + ext
	}
	return name, nil
}

// failMedia writes err, as 415 for an unsupported type.
func (s *Service) failMedia(w http.ResponseWriter, err error) {
	var u *unsupportedMedia
	if errors.As(err, &u) {
		httpx.WriteError(w, http.StatusUnsupportedMediaType, protocol.Errorf(protocol.CodeBadRequest,
			"unsupported media type %s: images (png, jpeg, gif, webp, bmp), pdf, utf-8 text, mp3/wav/ogg audio, mp4/webm video, zip, or opaque binary data", u.sniffed))
		return
	}
	s.fail(w, err)
}
