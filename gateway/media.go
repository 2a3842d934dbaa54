package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Media (docs/protocol.md, "Media"):
//
//	POST /api/v1/media       multipart/form-data, the file in field "file"
//	POST /api/v1/media?chatId=<id>   the same, bound to an end-to-end encrypted chat
//	GET  /api/v1/media/{id}  the bytes, with range requests
//
// Uploads go to the JetStream Object Store bucket natsutil.MediaBucket, streamed in
// chunks (the gateway holds at most one 512-byte sniffing buffer and one chunk per
// upload, never the whole file). The content type is decided from the bytes
// (http.DetectContentType), never from what the client claims, and must be on
// allowedMedia; the filename must not look like a path. An image or file message
// references an upload with meta {"mediaId"}; when its uploader sends such a
// message the gateway records the share in natsutil.MediaSharesBucket
// (<media>.<chat>.<message>) before publishing it. A download is served to the
// uploader, and to a current member of a chat where a message sharing it was
// sequenced and is not deleted; anyone else gets 403 and not a byte.
//
// An encrypted attachment (docs/e2ee.md) is referenced only inside ciphertext, so no
// message can share it. Its upload names the end-to-end encrypted chat instead
// (chatId, media_e2ee.go): the bytes are stored as application/octet-stream
// whatever they look like, the chat is recorded with the object, every current
// member of that chat may download it (always as an attachment), and it never
// expires unshared.

// MediaConfig is the media part of the gateway section (flags gateway.media-*).
// The limits on storage are described in media_quota.go.
type MediaConfig struct {
	// MaxBytes is the largest upload, in bytes; a larger one is refused with 413.
	MaxBytes int64 `yaml:"media_max_bytes"`
	// UserQuota is how many bytes one user's stored uploads may take, over all
	// gateways; an upload past it is refused with 507 quota_exceeded. 0: no quota.
	UserQuota int64 `yaml:"media_user_quota"`
	// UnsharedTTL is how long an upload may wait for a message to share it: after
	// it, sharing is refused (not_found) and the upload is deleted, its bytes given
	// back to the quota. Uploads once shared stay. 0: unshared uploads never expire.
	UnsharedTTL time.Duration `yaml:"media_unshared_ttl"`
}

// RegisterFlags registers the gateway.media-* flags.
func (c *MediaConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxBytes, "gateway.media-max-bytes", 25<<20, "largest media upload in bytes")
	fs.Int64Var(&c.UserQuota, "gateway.media-user-quota", 1<<30, "bytes one user's stored uploads may take (0: no quota)")
	fs.DurationVar(&c.UnsharedTTL, "gateway.media-unshared-ttl", 24*time.Hour, "delete an upload no message shared within this (0: never)")
}

// Validate checks the media settings.
func (c *MediaConfig) Validate() error {
	var errs []error
	if c.MaxBytes < 1024 || c.MaxBytes > 4<<30 {
		errs = append(errs, errors.New("gateway: gateway.media-max-bytes must be 1KiB..4GiB"))
	}
	if c.UserQuota < 0 {
		errs = append(errs, errors.New("gateway: gateway.media-user-quota must be >= 0"))
	}
	if c.UnsharedTTL != 0 && c.UnsharedTTL < time.Second {
		errs = append(errs, errors.New("gateway: gateway.media-unshared-ttl must be 0 or >= 1s"))
	}
	return errors.Join(errs...)
}

// allowedMedia maps each content type http.DetectContentType may find that uploads
// accept to the type it is served with. Anything else is refused with 415: notably
// text/html and text/xml (markup a browser might run, SVG included).
// application/octet-stream (opaque bytes: encrypted attachments, but executables
// too) is accepted and, like every type but images, always served as an
// attachment with nosniff, so a browser saves it and never renders or runs it.
var allowedMedia = map[string]string{
	"application/octet-stream":  "application/octet-stream",
	"image/png":                 "image/png",
	"image/jpeg":                "image/jpeg",
	"image/gif":                 "image/gif",
	"image/webp":                "image/webp",
	"image/bmp":                 "image/bmp",
	"application/pdf":           "application/pdf",
	"text/plain; charset=utf-8": "text/plain; charset=utf-8",
	"audio/mpeg":                "audio/mpeg",
	"audio/wave":                "audio/wav",
	"application/ogg":           "audio/ogg",
	"video/mp4":                 "video/mp4",
	"video/webm":                "video/webm",
	"application/zip":           "application/zip", // archives, office documents
}

// MaxMediaName is the longest stored filename, in bytes; longer ones are shortened
// (keeping the extension).
const MaxMediaName = 200

// multipartSlack is what a multipart body may carry beyond the file itself: part
// headers, the boundary, and small extra fields (which are ignored).
const multipartSlack = 64 << 10

// mediaInfo is the answer to an upload.
type mediaInfo struct {
	ID          string `json:"id"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Name        string `json:"name"`
	// ChatID is the encrypted chat the upload is bound to (media_e2ee.go).
	ChatID string `json:"chatId,omitempty"`
}

// mediaStore holds the media buckets' handles, looked up on first use (the roles
// create the buckets at start).
type mediaStore struct {
	g *Gateway

	uploads *uploadLimiter // gateway.limits.upload-rate (media_quota.go)

	mu      sync.Mutex // guards obs, kv, usageKV
	obs     jetstream.ObjectStore
	kv      jetstream.KeyValue
	usageKV jetstream.KeyValue // media_quota.go
}

func (ms *mediaStore) handles(ctx context.Context) (jetstream.ObjectStore, jetstream.KeyValue, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.obs == nil {
		obs, err := ms.g.deps.JS.ObjectStore(ctx, natsutil.MediaBucket)
		if err != nil {
			return nil, nil, fmt.Errorf("media bucket: %w", err)
		}
		kv, err := ms.g.deps.JS.KeyValue(ctx, natsutil.MediaSharesBucket)
		if err != nil {
			return nil, nil, fmt.Errorf("media shares bucket: %w", err)
		}
		ms.obs, ms.kv = obs, kv
	}
	return ms.obs, ms.kv, nil
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

func (g *Gateway) uploadMedia(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	if err := g.media.uploads.allow(id.UserID); err != nil { // media_quota.go
		refuse(w, err.(*protocol.Error))
		return
	}
	chat, err := g.mediaChat(ctx, r, id) // media_e2ee.go
	if err != nil {
		g.fail(w, err)
		return
	}
	limit := g.cfg.Media.MaxBytes
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		g.fail(w, protocol.Errorf(protocol.CodeBadRequest, `the body must be multipart/form-data with the file in field "file"`))
		return
	}
	if r.ContentLength > limit+multipartSlack {
		g.fail(w, protocol.Errorf(protocol.CodeTooLarge, "media over %d bytes", limit))
		return
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, limit+multipartSlack), params["boundary"])
	part, err := filePart(mr)
	if err != nil {
		g.failMedia(w, uploadError(err, limit))
		return
	}
	info, err := g.storeMedia(ctx, id.UserID, part, limit, chat)
	if err != nil {
		if errors.Is(err, errOverQuota) {
			err = quotaExceeded(g.cfg.Media.UserQuota)
		}
		g.failMedia(w, uploadError(err, limit))
		return
	}
	writeJSON(w, http.StatusCreated, info)
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
// its size to the uploader's quota and recording it as unshared (media_quota.go).
// An upload bound to an encrypted chat (chat not empty) is opaque ciphertext: it is
// stored as application/octet-stream, with the chat, and is never unshared.
// It returns errOverQuota for an upload past the quota.
func (g *Gateway) storeMedia(ctx context.Context, uploader string, part *multipart.Part, limit int64, chat string) (mediaInfo, error) {
	name, ctype, head, err := inspectFile(part)
	var um *unsupportedMedia
	if chat != "" && (err == nil || errors.As(err, &um)) {
		// Ciphertext may look like anything to a sniffer; it is served as what it is.
		name, ctype, head, err = inspectOpaque(part, head)
	}
	if err != nil {
		return mediaInfo{}, err
	}
	obs, _, err := g.media.handles(ctx)
	if err != nil {
		return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	usage, err := g.media.usage(ctx)
	if err != nil {
		g.log.Warn("media usage bucket unavailable", zap.Error(err))
		return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry")
	}
	// Within the quota's remainder: reading stops as soon as the upload passes it.
	quota := g.cfg.Media.UserQuota
	if quota > 0 {
		used, _, err := mediaUsage(ctx, usage, uploader)
		if err != nil {
			g.log.Warn("media usage unavailable", zap.Error(err))
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
	case errors.Is(err, errMediaTooLarge) && limit < g.cfg.Media.MaxBytes:
		return mediaInfo{}, errOverQuota
	case isStorageFull(err):
		g.log.Warn("media bucket full: raise nats.media-max-bytes or lower gateway.media-unshared-ttl")
		return mediaInfo{}, protocol.Errorf(protocol.CodeStorageFull, "media storage is full: retry later")
	case err != nil:
		if !errors.Is(err, errMediaTooLarge) {
			g.log.Warn("media upload failed", zap.String("user_id", uploader), zap.Error(err))
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
		g.log.Warn("media usage not recorded", zap.String("user_id", uploader), zap.Error(err))
		return mediaInfo{}, protocol.Errorf(protocol.CodeUnavailable, "media not stored; retry")
	}
	if g.cfg.Media.UnsharedTTL > 0 && chat == "" {
		if _, err := usage.Put(ctx, pendingKey(mediaID), []byte(uploader)); err != nil {
			_ = obs.Delete(context.WithoutCancel(ctx), mediaID)
			_ = chargeUsage(context.WithoutCancel(ctx), usage, uploader, -int64(info.Size), 0)
			g.log.Warn("media upload not recorded as pending", zap.String("user_id", uploader), zap.Error(err))
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
// trimmed and a long name is shortened to MaxMediaName bytes, keeping its extension.
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
	if len(name) > MaxMediaName {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
			ext = name[i:]
		}
		base := name[:MaxMediaName-len(ext)]
		for !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
		name = base + ext
	}
	return name, nil
}

// failMedia writes err, as 415 for an unsupported type.
func (g *Gateway) failMedia(w http.ResponseWriter, err error) {
	var u *unsupportedMedia
	if errors.As(err, &u) {
		writeError(w, http.StatusUnsupportedMediaType, protocol.Errorf(protocol.CodeBadRequest,
			"unsupported media type %s: images (png, jpeg, gif, webp, bmp), pdf, utf-8 text, mp3/wav/ogg audio, mp4/webm video, zip, or opaque binary data", u.sniffed))
		return
	}
	g.fail(w, err)
}

func (g *Gateway) getMedia(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	mediaID := r.PathValue("id")
	if err := validID("media", mediaID); err != nil {
		g.fail(w, err)
		return
	}
	obs, _, err := g.media.handles(ctx)
	if err != nil {
		g.fail(w, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err))
		return
	}
	info, err := obs.GetInfo(ctx, mediaID)
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		g.fail(w, protocol.Errorf(protocol.CodeNotFound, "no media %s", mediaID))
		return
	}
	if err != nil {
		g.fail(w, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err))
		return
	}
	bound := info.Metadata[mediaChatKey]
	if info.Metadata["uploader"] != id.UserID && bound != "" {
		// An encrypted chat's upload: for its current members.
		if _, err := g.members.checkFresh(ctx, bound, id.UserID); err != nil {
			g.fail(w, protocol.Errorf(protocol.CodeForbidden, "media %s is not shared in a chat of yours", mediaID))
			return
		}
	} else if info.Metadata["uploader"] != id.UserID {
		ok, err := g.media.sharedWith(ctx, mediaID, id.UserID)
		if err == nil && !ok {
			ok, err = g.avatarVisible(ctx, mediaID, info.Metadata["uploader"], id.UserID) // profiles.go
		}
		if err != nil {
			g.fail(w, err)
			return
		}
		if !ok {
			g.fail(w, protocol.Errorf(protocol.CodeForbidden, "media %s is not shared in a chat of yours", mediaID))
			return
		}
	}
	ctype := info.Metadata["contentType"]
	disposition := "attachment"
	if strings.HasPrefix(ctype, "image/") && bound == "" {
		disposition = "inline"
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": info.Metadata["name"]}))
	h.Set("Cache-Control", "private, no-cache") // access can be lost: revalidate (the ETag makes that cheap)
	if sum := digestHex(info.Digest); sum != "" {
		h.Set("ETag", `"`+sum+`"`)
	}
	limitRanges(r, int64(info.Size)) // media_range.go: at most a few ranges, in one forward pass
	rs := &objectSeeker{ctx: ctx, obs: obs, name: mediaID, size: int64(info.Size)}
	defer rs.Close()
	http.ServeContent(w, r, "", info.ModTime, rs)
}

// sharedWith reports whether mediaID is shared with user: through a message that
// is sequenced and not deleted, in a chat user is a member of now.
func (ms *mediaStore) sharedWith(ctx context.Context, mediaID, user string) (bool, error) {
	_, kv, err := ms.handles(ctx)
	if err != nil {
		return false, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	lister, err := kv.ListKeysFiltered(ctx, mediaID+".>")
	if err != nil {
		return false, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	defer func() { _ = lister.Stop() }()
	for key := range lister.Keys() {
		parts := strings.Split(key, ".")
		if len(parts) != 3 {
			continue
		}
		chat, msgID := parts[1], parts[2]
		if _, err := ms.g.members.checkFresh(ctx, chat, user); err != nil {
			continue
		}
		m, err := ms.g.deps.History.Message(ctx, chat, msgID, "")
		if err != nil || m.Deleted || mediaIDOf(m.Meta) != mediaID {
			continue
		}
		return true, nil
	}
	return false, nil
}

// mediaIDOf returns the mediaId of a message's meta, "" if none.
func mediaIDOf(meta json.RawMessage) string {
	if len(meta) == 0 || !bytes.Contains(meta, []byte(`"mediaId"`)) {
		return ""
	}
	var ref protocol.MediaRef
	if json.Unmarshal(meta, &ref) != nil {
		return ""
	}
	return ref.MediaID
}

// share checks and records the media m (about to be published) references, if any.
// An image or file message must reference media; only its uploader (the caller:
// a user, or the service posting over REST) may share it. It returns a
// *protocol.Error for a refusal.
func (ms *mediaStore) share(ctx context.Context, uploader string, m *protocol.Message) error {
	mediaID := mediaIDOf(m.Meta)
	if mediaID == "" {
		if m.MessageType == protocol.TypeImage || m.MessageType == protocol.TypeFile {
			return protocol.Errorf(protocol.CodeBadRequest, `an %s message needs meta {"mediaId"} from POST /api/v1/media`, m.MessageType)
		}
		return nil
	}
	if err := validID("media", mediaID); err != nil {
		return err
	}
	obs, kv, err := ms.handles(ctx)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	info, err := obs.GetInfo(ctx, mediaID)
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		return protocol.Errorf(protocol.CodeNotFound, "no media %s", mediaID)
	}
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	if info.Metadata["uploader"] != uploader {
		return protocol.Errorf(protocol.CodeForbidden, "only the uploader of media %s may share it", mediaID)
	}
	// An upload not yet shared expires at gateway.media-unshared-ttl (media_quota.go).
	var pending bool
	if ttl := ms.g.cfg.Media.UnsharedTTL; ttl > 0 {
		usage, err := ms.usage(ctx)
		if err != nil {
			return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry")
		}
		e, err := usage.Get(ctx, pendingKey(mediaID))
		switch {
		case err == nil:
			pending = true
			if time.Since(e.Created()) > ttl {
				return protocol.Errorf(protocol.CodeNotFound, "media %s expired unshared after %s: upload it again", mediaID, ttl)
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry")
		}
	}
	if _, err := kv.Put(ctx, mediaID+"."+m.ChatID+"."+m.MessageID, []byte(uploader)); err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "media share not recorded; retry").WithCause(err)
	}
	if pending {
		if usage, err := ms.usage(ctx); err == nil {
			_ = usage.Delete(ctx, pendingKey(mediaID)) // shared: it stays (the sweep also checks shares)
		}
	}
	return nil
}

// objectSeeker is an io.ReadSeeker over an object of known size, for
// http.ServeContent: the object store's reader only reads forward, so a seek just
// moves the position, and a read reopens the object when the position is behind
// what was read and skips forward to it. Memory stays at one chunk whatever the
// object's size; a range far into a large object costs reading up to it from NATS.
type objectSeeker struct {
	ctx  context.Context
	obs  jetstream.ObjectStore
	name string
	size int64

	pos  int64                  // where the next Read reads
	r    jetstream.ObjectResult // open reader, nil if none
	rpos int64                  // r's position
}

func (s *objectSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.pos
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("objectSeeker: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("objectSeeker: negative position")
	}
	s.pos = offset
	return offset, nil
}

func (s *objectSeeker) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if s.r == nil || s.rpos > s.pos {
		s.Close()
		r, err := s.obs.Get(s.ctx, s.name)
		if err != nil {
			return 0, err
		}
		s.r, s.rpos = r, 0
	}
	if s.rpos < s.pos {
		n, err := io.CopyN(io.Discard, s.r, s.pos-s.rpos)
		s.rpos += n
		if err != nil {
			return 0, err
		}
	}
	n, err := s.r.Read(p)
	s.pos += int64(n)
	s.rpos += int64(n)
	return n, err
}

// Close releases the open reader, if any.
func (s *objectSeeker) Close() {
	if s.r != nil {
		_ = s.r.Close()
		s.r = nil
	}
}
