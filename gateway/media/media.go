// Package media is the gateway's media API (docs/protocol.md, "Media"):
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
// (chatId, e2ee.go): the bytes are stored as application/octet-stream
// whatever they look like, the chat is recorded with the object, every current
// member of that chat may download it (always as an attachment), and it never
// expires unshared.
package media

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Config is the media part of the gateway section (flags gateway.media-*).
// The limits on storage are described in quota.go.
type Config struct {
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
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxBytes, "gateway.media-max-bytes", 25<<20, "largest media upload in bytes")
	fs.Int64Var(&c.UserQuota, "gateway.media-user-quota", 1<<30, "bytes one user's stored uploads may take (0: no quota)")
	fs.DurationVar(&c.UnsharedTTL, "gateway.media-unshared-ttl", 24*time.Hour, "delete an upload no message shared within this (0: never)")
}

// Validate checks the media settings.
func (c *Config) Validate() error {
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

// MaxName is the longest stored filename, in bytes; longer ones are shortened
// (keeping the extension).
const MaxName = 200

// multipartSlack is what a multipart body may carry beyond the file itself: part
// headers, the boundary, and small extra fields (which are ignored).
const multipartSlack = 64 << 10

// Buckets opens the JetStream buckets media lives in (natsutil.MediaBucket,
// MediaSharesBucket, MediaUsageBucket); a jetstream.JetStream is one. The roles
// create the buckets at start, so they are looked up on first use.
type Buckets interface {
	ObjectStore(ctx context.Context, bucket string) (jetstream.ObjectStore, error)
	KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error)
}

// Members answers whether a user is a member of a chat now.
type Members interface {
	// CheckMember returns nil if user is a member of chat, asking the store (not
	// a cache: a removal takes effect at once), else a *protocol.Error:
	// not_member, or unavailable when the store could not answer.
	CheckMember(ctx context.Context, chat, user string) error
}

// Chats tells which chats are end-to-end encrypted.
type Chats interface {
	// Encrypted reports whether chat is end-to-end encrypted; known is false when
	// the chat could not be read (it does not exist, or the store failed).
	Encrypted(ctx context.Context, chat string) (enc, known bool)
}

// History reads one message in its current state (a *history.Reader).
type History interface {
	Message(ctx context.Context, chat, messageID, viewer string) (protocol.Message, error)
}

// Avatars tells whether an upload is shown as a profile's avatar.
type Avatars interface {
	// AvatarVisible reports whether mediaID is the current avatar of its uploader
	// and caller may read the uploader's profile: then caller may download it.
	AvatarVisible(ctx context.Context, mediaID, uploader, caller string) (bool, error)
}

// Deps are what media needs from the gateway.
type Deps struct {
	Buckets Buckets
	Members Members
	Chats   Chats
	History History
	Avatars Avatars
}

// UploadRate is the per-user upload bucket of one gateway
// (gateway.limits.upload-rate, per second, and -burst); a rate of 0 allows every
// upload.
type UploadRate struct {
	Rate  float64
	Burst int
}

// Service serves uploads and downloads, records shares and expires unshared
// uploads. It is safe for concurrent use.
type Service struct {
	cfg  Config
	deps Deps
	log  *zap.Logger

	uploads *uploadLimiter // gateway.limits.upload-rate (quota.go)

	mu      sync.Mutex // guards obs, kv, usageKV
	obs     jetstream.ObjectStore
	kv      jetstream.KeyValue
	usageKV jetstream.KeyValue // quota.go
}

// New returns the media service.
func New(cfg Config, uploads UploadRate, deps Deps, log *zap.Logger) *Service {
	return &Service{cfg: cfg, deps: deps, log: log, uploads: newUploadLimiter(uploads.Rate, uploads.Burst)}
}

// fail writes err (httpx.Fail).
func (s *Service) fail(w http.ResponseWriter, err error) { httpx.Fail(s.log, w, err) }

func (s *Service) handles(ctx context.Context) (jetstream.ObjectStore, jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obs == nil {
		obs, err := s.deps.Buckets.ObjectStore(ctx, natsutil.MediaBucket)
		if err != nil {
			return nil, nil, fmt.Errorf("media bucket: %w", err)
		}
		kv, err := s.deps.Buckets.KeyValue(ctx, natsutil.MediaSharesBucket)
		if err != nil {
			return nil, nil, fmt.Errorf("media shares bucket: %w", err)
		}
		s.obs, s.kv = obs, kv
	}
	return s.obs, s.kv, nil
}
