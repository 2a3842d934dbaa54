package media

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Download serves GET /api/v1/media/{id}: the bytes, with range requests
// (range.go), to the uploader, to a member of a chat where a message shared them,
// to the members of the encrypted chat an upload is bound to, and to those who may
// see the profile whose avatar it is; to anyone else 403 and not a byte.
func (s *Service) Download(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	mediaID := r.PathValue("id")
	if err := protocol.ValidID("media", mediaID); err != nil {
		s.fail(w, err)
		return
	}
	obs, _, err := s.handles(ctx)
	if err != nil {
		s.fail(w, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err))
		return
	}
	info, err := obs.GetInfo(ctx, mediaID)
	if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.Deleted) {
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "no media %s", mediaID))
		return
	}
	if err != nil {
		s.fail(w, protocol.Errorf(protocol.CodeUnavailable, "media storage unavailable; retry").WithCause(err))
		return
	}
	bound := info.Metadata[mediaChatKey]
	if info.Metadata["uploader"] != id.UserID && bound != "" {
		// An encrypted chat's upload: for its current members.
		if err := s.deps.Members.CheckMember(ctx, bound, id.UserID); err != nil {
			s.fail(w, protocol.Errorf(protocol.CodeForbidden, "media %s is not shared in a chat of yours", mediaID))
			return
		}
	} else if info.Metadata["uploader"] != id.UserID {
		ok, err := s.sharedWith(ctx, mediaID, id.UserID)
		if err == nil && !ok {
			ok, err = s.deps.Avatars.AvatarVisible(ctx, mediaID, info.Metadata["uploader"], id.UserID) // Deps.Avatars
		}
		if err != nil {
			s.fail(w, err)
			return
		}
		if !ok {
			s.fail(w, protocol.Errorf(protocol.CodeForbidden, "media %s is not shared in a chat of yours", mediaID))
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
	limitRanges(r, int64(info.Size)) // range.go: at most a few ranges, in one forward pass
	rs := &objectSeeker{ctx: ctx, obs: obs, name: mediaID, size: int64(info.Size)}
	defer rs.Close()
	http.ServeContent(w, r, "", info.ModTime, rs)
}

// sharedWith reports whether mediaID is shared with user: through a message that
// is sequenced and not deleted, in a chat user is a member of now.
func (s *Service) sharedWith(ctx context.Context, mediaID, user string) (bool, error) {
	_, kv, err := s.handles(ctx)
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
		if err := s.deps.Members.CheckMember(ctx, chat, user); err != nil {
			continue
		}
		m, err := s.deps.History.Message(ctx, chat, msgID, "")
		if err != nil || m.Deleted || mediaIDOf(m.Meta) != mediaID {
			continue
		}
		return true, nil
	}
	return false, nil
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
