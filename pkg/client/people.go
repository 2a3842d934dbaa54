package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
)

// People is the REST side of profiles, blocking and group invitations
// (docs/protocol.md, "Profiles", "Blocking", "Invitations"). Invitations also
// arrive live as frames of type protocol.FrameInvitation (Conn.Frames,
// Client.Events).
type People struct {
	// BaseURL is the gateway's HTTP base, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Token returns the bearer token for each call.
	Token func(ctx context.Context) (string, error)
	// HTTP is the client to use (default http.DefaultClient).
	HTTP *http.Client
}

// Profile is a user's profile. GroupAdds and DirectAddsDefault are set only on
// one's own (People.Profile).
type Profile struct {
	UserID      string `json:"userId"`
	DisplayName string `json:"displayName,omitempty"`
	// Avatar is the media ID of the avatar image (download: GET /api/v1/media/{id}).
	Avatar string `json:"avatar,omitempty"`
	// GroupAdds: "everyone", "contacts" or "" (the server's default).
	GroupAdds         string     `json:"groupAdds,omitempty"`
	DirectAddsDefault bool       `json:"directAddsDefault,omitempty"`
	UpdatedAt         *time.Time `json:"updatedAt,omitempty"`
}

// Name is what to show for the user: the display name, else the user ID.
func (p Profile) Name() string {
	if p.DisplayName != "" {
		return p.DisplayName
	}
	return p.UserID
}

// Block is one user the caller blocks.
type Block struct {
	UserID    string    `json:"userId"`
	CreatedAt time.Time `json:"createdAt"`
}

// Invitation is a pending group invitation of the caller.
type Invitation struct {
	ChatID    string    `json:"chatId"`
	ChatName  string    `json:"chatName,omitempty"`
	InvitedBy string    `json:"invitedBy"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// Profile returns the caller's own profile, settings included.
func (p *People) Profile(ctx context.Context) (Profile, error) {
	var out Profile
	err := p.call(ctx, http.MethodGet, "/api/v1/profile", nil, &out)
	return out, err
}

// SetProfile replaces the caller's profile (empty fields are cleared): a display
// name (at most 64 characters, no control characters), the media ID of an image
// the caller uploaded, and who may add them to groups directly.
func (p *People) SetProfile(ctx context.Context, displayName, avatar, groupAdds string) (Profile, error) {
	var out Profile
	err := p.call(ctx, http.MethodPut, "/api/v1/profile",
		map[string]string{"displayName": displayName, "avatar": avatar, "groupAdds": groupAdds}, &out)
	return out, err
}

// UserProfile returns another user's public profile; a *protocol.Error with
// CodeNotFound for a user who shares no chat with the caller (or does not exist).
func (p *People) UserProfile(ctx context.Context, userID string) (Profile, error) {
	var out Profile
	err := p.call(ctx, http.MethodGet, "/api/v1/users/"+url.PathEscape(userID)+"/profile", nil, &out)
	return out, err
}

// ChatProfiles returns the profiles of all of a chat's members, reading every page.
func (p *People) ChatProfiles(ctx context.Context, chatID string) ([]Profile, error) {
	var all []Profile
	after := ""
	for {
		var page struct {
			Profiles []Profile `json:"profiles"`
			HasMore  bool      `json:"hasMore"`
			Cursor   string    `json:"cursor"`
		}
		q := url.Values{"limit": {strconv.Itoa(1000)}}
		if after != "" {
			q.Set("after", after)
		}
		if err := p.call(ctx, http.MethodGet, "/api/v1/chats/"+url.PathEscape(chatID)+"/profiles?"+q.Encode(), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Profiles...)
		if !page.HasMore || page.Cursor == "" {
			return all, nil
		}
		after = page.Cursor
	}
}

// Block blocks userID (blocking again is not an error).
func (p *People) Block(ctx context.Context, userID string) error {
	return p.call(ctx, http.MethodPost, "/api/v1/blocks/"+url.PathEscape(userID), nil, nil)
}

// Unblock unblocks userID; a *protocol.Error with CodeNotFound if not blocked.
func (p *People) Unblock(ctx context.Context, userID string) error {
	return p.call(ctx, http.MethodDelete, "/api/v1/blocks/"+url.PathEscape(userID), nil, nil)
}

// Blocks lists the users the caller blocks.
func (p *People) Blocks(ctx context.Context) ([]Block, error) {
	var out struct {
		Blocks []Block `json:"blocks"`
	}
	err := p.call(ctx, http.MethodGet, "/api/v1/blocks", nil, &out)
	return out.Blocks, err
}

// Invitations lists the caller's pending group invitations, newest first.
func (p *People) Invitations(ctx context.Context) ([]Invitation, error) {
	var out struct {
		Invitations []Invitation `json:"invitations"`
	}
	err := p.call(ctx, http.MethodGet, "/api/v1/invitations", nil, &out)
	return out.Invitations, err
}

// Accept accepts the invitation to chatID: the caller joins the group.
func (p *People) Accept(ctx context.Context, chatID string) error {
	return p.call(ctx, http.MethodPost, "/api/v1/invitations/"+url.PathEscape(chatID)+"/accept", nil, nil)
}

// Decline declines the invitation to chatID.
func (p *People) Decline(ctx context.Context, chatID string) error {
	return p.call(ctx, http.MethodPost, "/api/v1/invitations/"+url.PathEscape(chatID)+"/decline", nil, nil)
}

// call makes one JSON call; a non-2xx answer becomes a *protocol.Error.
func (p *People) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(p.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	tok, err := p.Token(ctx)
	if err != nil {
		return fmt.Errorf("client: token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := p.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error protocol.Error `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("client: %s %s: %w", method, path, &e.Error)
		}
		return fmt.Errorf("client: %s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("client: %s %s: answer: %w", method, path, err)
		}
	}
	return nil
}
