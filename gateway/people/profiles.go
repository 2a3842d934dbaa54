package people

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Profiles (docs/protocol.md, "Profiles"):
//
//	GET /api/v1/profile                  the caller's profile, settings included
//	PUT /api/v1/profile                  {displayName, avatar, groupAdds}: replace it
//	GET /api/v1/users/{id}/profile       another user's public profile
//	GET /api/v1/chats/{id}/profiles      the public profiles of a chat's members, paged
//
// A profile is a display name and an avatar (the media ID of an image the user
// uploaded with POST /api/v1/media). Identity stays the token's subject: a name is
// only shown. Another user's profile is readable by those who share a chat with
// them (and by services); to anyone else it does not exist (404, as for a user who
// never was), so profiles do not reveal who uses the server.

// publicProfile is a profile as others see it.
type publicProfile struct {
	UserID      string `json:"userId"`
	DisplayName string `json:"displayName,omitempty"`
	Avatar      string `json:"avatar,omitempty"`
}

// ownProfile is the caller's own profile: the public part and the settings.
type ownProfile struct {
	publicProfile
	// GroupAdds: "everyone", "contacts", or "" (the server's default, which
	// DirectAddsDefault tells).
	GroupAdds         string     `json:"groupAdds"`
	DirectAddsDefault bool       `json:"directAddsDefault"`
	UpdatedAt         *time.Time `json:"updatedAt,omitempty"`
}

// profileRequest is the body of PUT /api/v1/profile: the whole profile (an absent
// field is cleared).
type profileRequest struct {
	DisplayName string `json:"displayName"`
	Avatar      string `json:"avatar"`
	GroupAdds   string `json:"groupAdds"`
}

var errServiceProfile = protocol.Errorf(protocol.CodeForbidden, "service tokens have no profile: use a user's token")

// loadProfile returns uid's profile (the zero profile if none).
func loadProfile(ctx context.Context, st ProfileReader, uid string) (store.Profile, error) {
	ps, err := st.Profiles(ctx, []string{uid})
	if err != nil {
		return store.Profile{}, httpx.StoreUnavailable(err)
	}
	if len(ps) == 0 {
		return store.Profile{UserID: uid}, nil
	}
	return ps[0], nil
}

func (s *Service) ownView(p store.Profile) ownProfile {
	v := ownProfile{publicProfile: publicProfile{UserID: p.UserID, DisplayName: p.DisplayName, Avatar: p.Avatar},
		GroupAdds: p.GroupAdds, DirectAddsDefault: s.cfg.DirectAddsDefault}
	if !p.UpdatedAt.IsZero() {
		at := p.UpdatedAt.UTC()
		v.UpdatedAt = &at
	}
	return v
}

// OwnProfile serves GET /api/v1/profile.
func (s *Service) OwnProfile(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		s.fail(w, errServiceProfile)
		return
	}
	p, err := loadProfile(r.Context(), s.deps.Store, id.UserID)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, s.ownView(p))
}

// PutProfile serves PUT /api/v1/profile.
func (s *Service) PutProfile(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	if id.Service {
		s.fail(w, errServiceProfile)
		return
	}
	var req profileRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	name, err := store.CleanDisplayName(req.DisplayName)
	if err != nil {
		s.fail(w, profileError(err))
		return
	}
	p := store.Profile{UserID: id.UserID, DisplayName: name, Avatar: req.Avatar, GroupAdds: req.GroupAdds,
		UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := store.ValidateProfile(p); err != nil {
		s.fail(w, profileError(err))
		return
	}
	if p.Avatar != "" {
		old, err := loadProfile(ctx, s.deps.Store, id.UserID)
		if err != nil {
			s.fail(w, err)
			return
		}
		if old.Avatar != p.Avatar {
			if err := s.deps.Avatars.ClaimAvatar(ctx, id.UserID, p.Avatar); err != nil {
				s.fail(w, err)
				return
			}
		}
	}
	if err := s.deps.Store.PutProfile(ctx, p); err != nil {
		if errors.Is(err, store.ErrBadProfile) {
			s.fail(w, profileError(err))
			return
		}
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, s.ownView(p))
}

// profileError is the client error for a refused profile.
func profileError(err error) error {
	msg := strings.Replace(err.Error(), "store: invalid profile: ", "invalid profile: ", 1)
	if strings.Contains(msg, "longer than") {
		return protocol.Errorf(protocol.CodeTooLarge, "%s", msg)
	}
	return protocol.Errorf(protocol.CodeBadRequest, "%s", msg)
}

// mayReadProfile reports whether caller may see target's profile: themself, a
// service, or someone sharing a chat with them.
func mayReadProfile(ctx context.Context, st ProfileReader, caller string, service bool, target string) (bool, error) {
	if caller == target || service {
		return true, nil
	}
	shared, err := st.SharesChat(ctx, caller, []string{target})
	if err != nil {
		return false, httpx.StoreUnavailable(err)
	}
	return shared[target], nil
}

// errNoProfile is the answer for a profile the caller may not read: the same as
// for a user who does not exist.
func errNoProfile(uid string) error {
	return protocol.Errorf(protocol.CodeNotFound, "no user %s among the people you share a chat with", uid)
}

// UserProfile serves GET /api/v1/users/{id}/profile.
func (s *Service) UserProfile(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	target := r.PathValue("id")
	if err := protocol.ValidID("user", target); err != nil {
		s.fail(w, err)
		return
	}
	ok, err := mayReadProfile(ctx, s.deps.Store, id.UserID, id.Service, target)
	if err != nil {
		s.fail(w, err)
		return
	}
	if !ok {
		s.fail(w, errNoProfile(target))
		return
	}
	p, err := loadProfile(ctx, s.deps.Store, target)
	if err != nil {
		s.fail(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, publicProfile{UserID: target, DisplayName: p.DisplayName, Avatar: p.Avatar})
}

// ChatProfiles serves GET /api/v1/chats/{id}/profiles: it pages the public profiles of a chat's members by user ID: ?after=
// (the previous page's cursor) and ?limit= (1..store.MaxProfileBatch, default 200).
// Members who never set a profile are listed with their user ID only.
func (s *Service) ChatProfiles(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	limit, err := httpx.QueryInt(r, "limit", 200, 1, store.MaxProfileBatch)
	if err != nil {
		s.fail(w, err)
		return
	}
	after := r.URL.Query().Get("after")
	if after != "" {
		if err := protocol.ValidID("user", after); err != nil {
			s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "after must be a cursor from a previous page"))
			return
		}
	}
	if id.Service {
		if err := protocol.ValidID("chat", chat); err != nil {
			s.fail(w, err)
			return
		}
	} else if err := s.deps.Chats.MemberOf(ctx, chat, id.UserID); err != nil {
		s.fail(w, err)
		return
	}
	ms, err := s.deps.Store.Members(ctx, chat)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	uids := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.UserID > after {
			uids = append(uids, m.UserID)
		}
	}
	sort.Strings(uids)
	hasMore := len(uids) > limit
	if hasMore {
		uids = uids[:limit]
	}
	ps, err := s.deps.Store.Profiles(ctx, uids)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(err))
		return
	}
	byUser := make(map[string]store.Profile, len(ps))
	for _, p := range ps {
		byUser[p.UserID] = p
	}
	out := make([]publicProfile, 0, len(uids))
	for _, u := range uids {
		p := byUser[u]
		out = append(out, publicProfile{UserID: u, DisplayName: p.DisplayName, Avatar: p.Avatar})
	}
	body := map[string]any{"chatId": chat, "profiles": out, "hasMore": hasMore}
	if hasMore {
		body["cursor"] = uids[len(uids)-1]
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

// AvatarCheck answers, from the profiles alone, whether an upload may be
// downloaded as an avatar (media.Avatars): it needs no Service, so the media
// service, which the profiles need for ClaimAvatar, can be built first.
type AvatarCheck struct{ Store ProfileReader }

// AvatarVisible reports whether mediaID is the current avatar of its uploader and
// caller may read the uploader's profile: then caller may download it.
func (a AvatarCheck) AvatarVisible(ctx context.Context, mediaID, uploader, caller string) (bool, error) {
	if uploader == "" {
		return false, nil
	}
	prof, err := loadProfile(ctx, a.Store, uploader)
	if err != nil || prof.Avatar != mediaID {
		return false, err
	}
	return mayReadProfile(ctx, a.Store, caller, false, uploader)
}
