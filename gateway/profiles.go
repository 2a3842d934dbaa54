package gateway

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

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
func loadProfile(ctx context.Context, st store.PeopleStore, uid string) (store.Profile, error) {
	ps, err := st.Profiles(ctx, []string{uid})
	if err != nil {
		return store.Profile{}, storeUnavailable(err)
	}
	if len(ps) == 0 {
		return store.Profile{UserID: uid}, nil
	}
	return ps[0], nil
}

func (g *Gateway) ownView(p store.Profile) ownProfile {
	v := ownProfile{publicProfile: publicProfile{UserID: p.UserID, DisplayName: p.DisplayName, Avatar: p.Avatar},
		GroupAdds: p.GroupAdds, DirectAddsDefault: g.cfg.Consent.DirectAdds}
	if !p.UpdatedAt.IsZero() {
		at := p.UpdatedAt.UTC()
		v.UpdatedAt = &at
	}
	return v
}

func (g *Gateway) getOwnProfile(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		g.fail(w, errServiceProfile)
		return
	}
	p, err := loadProfile(r.Context(), g.deps.Store, id.UserID)
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, g.ownView(p))
}

func (g *Gateway) putProfile(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	if id.Service {
		g.fail(w, errServiceProfile)
		return
	}
	var req profileRequest
	if err := g.decodeBody(w, r, &req); err != nil {
		g.fail(w, err)
		return
	}
	name, err := store.CleanDisplayName(req.DisplayName)
	if err != nil {
		g.fail(w, profileError(err))
		return
	}
	p := store.Profile{UserID: id.UserID, DisplayName: name, Avatar: req.Avatar, GroupAdds: req.GroupAdds,
		UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := store.ValidateProfile(p); err != nil {
		g.fail(w, profileError(err))
		return
	}
	if p.Avatar != "" {
		old, err := loadProfile(ctx, g.deps.Store, id.UserID)
		if err != nil {
			g.fail(w, err)
			return
		}
		if old.Avatar != p.Avatar {
			if err := g.media.ClaimAvatar(ctx, id.UserID, p.Avatar); err != nil {
				g.fail(w, err)
				return
			}
		}
	}
	if err := g.deps.Store.PutProfile(ctx, p); err != nil {
		if errors.Is(err, store.ErrBadProfile) {
			g.fail(w, profileError(err))
			return
		}
		g.fail(w, storeUnavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, g.ownView(p))
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
func mayReadProfile(ctx context.Context, st store.PeopleStore, caller string, service bool, target string) (bool, error) {
	if caller == target || service {
		return true, nil
	}
	shared, err := st.SharesChat(ctx, caller, []string{target})
	if err != nil {
		return false, storeUnavailable(err)
	}
	return shared[target], nil
}

// errNoProfile is the answer for a profile the caller may not read: the same as
// for a user who does not exist.
func errNoProfile(uid string) error {
	return protocol.Errorf(protocol.CodeNotFound, "no user %s among the people you share a chat with", uid)
}

func (g *Gateway) getUserProfile(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	target := r.PathValue("id")
	if err := validID("user", target); err != nil {
		g.fail(w, err)
		return
	}
	ok, err := mayReadProfile(ctx, g.deps.Store, id.UserID, id.Service, target)
	if err != nil {
		g.fail(w, err)
		return
	}
	if !ok {
		g.fail(w, errNoProfile(target))
		return
	}
	p, err := loadProfile(ctx, g.deps.Store, target)
	if err != nil {
		g.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, publicProfile{UserID: target, DisplayName: p.DisplayName, Avatar: p.Avatar})
}

// chatProfiles pages the public profiles of a chat's members by user ID: ?after=
// (the previous page's cursor) and ?limit= (1..store.MaxProfileBatch, default 200).
// Members who never set a profile are listed with their user ID only.
func (g *Gateway) chatProfiles(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	chat := r.PathValue("id")
	limit, err := queryInt(r, "limit", 200, 1, store.MaxProfileBatch)
	if err != nil {
		g.fail(w, err)
		return
	}
	after := r.URL.Query().Get("after")
	if after != "" {
		if err := validID("user", after); err != nil {
			g.fail(w, protocol.Errorf(protocol.CodeBadRequest, "after must be a cursor from a previous page"))
			return
		}
	}
	if id.Service {
		if err := validID("chat", chat); err != nil {
			g.fail(w, err)
			return
		}
	} else if _, _, err := g.memberOf(ctx, chat, id.UserID); err != nil {
		g.fail(w, err)
		return
	}
	ms, err := g.deps.Store.Members(ctx, chat)
	if err != nil {
		g.fail(w, storeUnavailable(err))
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
	ps, err := g.deps.Store.Profiles(ctx, uids)
	if err != nil {
		g.fail(w, storeUnavailable(err))
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
	writeJSON(w, http.StatusOK, body)
}

// avatarPort answers the media service's avatar question (media.Avatars) from
// the profiles: an upload that is a profile's current avatar may be downloaded by
// those who may read that profile.
type avatarPort struct{ st store.PeopleStore }

// AvatarVisible reports whether mediaID is the current avatar of its uploader and
// caller may read the uploader's profile: then caller may download it.
func (p avatarPort) AvatarVisible(ctx context.Context, mediaID, uploader, caller string) (bool, error) {
	if uploader == "" {
		return false, nil
	}
	prof, err := loadProfile(ctx, p.st, uploader)
	if err != nil || prof.Avatar != mediaID {
		return false, err
	}
	return mayReadProfile(ctx, p.st, caller, false, uploader)
}
