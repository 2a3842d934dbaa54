package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
)

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

// Share checks and records the media m (about to be published) references, if any.
// An image or file message must reference media; only its uploader (the caller:
// a user, or the service posting over REST) may share it. It returns a
// *protocol.Error for a refusal.
func (s *Service) Share(ctx context.Context, uploader string, m *protocol.Message) error {
	mediaID := mediaIDOf(m.Meta)
	if mediaID == "" {
		if m.MessageType == protocol.TypeImage || m.MessageType == protocol.TypeFile {
			return protocol.Errorf(protocol.CodeBadRequest, `an %s message needs meta {"mediaId"} from POST /api/v1/media`, m.MessageType)
		}
		return nil
	}
	if err := protocol.ValidID("media", mediaID); err != nil {
		return err
	}
	obs, kv, err := s.handles(ctx)
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
	// An upload not yet shared expires at gateway.media-unshared-ttl (quota.go).
	var pending bool
	if ttl := s.cfg.UnsharedTTL; ttl > 0 {
		usage, err := s.usage(ctx)
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
		if usage, err := s.usage(ctx); err == nil {
			_ = usage.Delete(ctx, pendingKey(mediaID)) // shared: it stays (the sweep also checks shares)
		}
	}
	return nil
}

// ClaimAvatar checks that mediaID is an image uploader uploaded (and that has not
// expired unshared) and keeps it: an avatar counts as shared, so the unshared
// sweep (quota.go) leaves it.
func (s *Service) ClaimAvatar(ctx context.Context, uploader, mediaID string) error {
	obs, _, err := s.handles(ctx)
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	info, err := obs.GetInfo(ctx, mediaID)
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		return protocol.Errorf(protocol.CodeNotFound, "no media %s: upload the avatar with POST /api/v1/media first", mediaID)
	}
	if err != nil {
		return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
	}
	if info.Metadata["uploader"] != uploader {
		return protocol.Errorf(protocol.CodeForbidden, "media %s is not yours: upload your own avatar", mediaID)
	}
	if !strings.HasPrefix(info.Metadata["contentType"], "image/") {
		return protocol.Errorf(protocol.CodeBadRequest, "media %s is %s: an avatar must be an image (png, jpeg, gif, webp, bmp)", mediaID, info.Metadata["contentType"])
	}
	if ttl := s.cfg.UnsharedTTL; ttl > 0 {
		usage, err := s.usage(ctx)
		if err != nil {
			return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
		}
		e, err := usage.Get(ctx, pendingKey(mediaID))
		switch {
		case err == nil:
			if time.Since(e.Created()) > ttl {
				return protocol.Errorf(protocol.CodeNotFound, "media %s expired unshared after %s: upload it again", mediaID, ttl)
			}
			if err := usage.Delete(ctx, pendingKey(mediaID)); err != nil {
				return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err)
		}
	}
	return nil
}
