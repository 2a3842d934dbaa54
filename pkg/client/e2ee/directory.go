package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/natter-chat/natter/pkg/protocol"
)

// Directory is the REST side a Session needs: the key directory
// (/api/v1/keys/...), chat members, chat creation and media (docs/e2ee.md, "Server").
type Directory struct {
	// BaseURL is the gateway's HTTP base, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Token returns the bearer token for each call.
	Token func(ctx context.Context) (string, error)
	// HTTP is the client to use (default http.DefaultClient).
	HTTP *http.Client
}

// DirectoryDevice is one device as GET /api/v1/keys/users/{userId} lists it.
type DirectoryDevice struct {
	DeviceID     string  `json:"deviceId"`
	IdentityKey  string  `json:"identityKey"`
	SignedPreKey PreKey  `json:"signedPreKey"`
	OneTimeKey   *PreKey `json:"oneTimeKey"`
}

// do calls the API; a non-2xx answer becomes a *protocol.Error (its code and message).
func (d *Directory) do(ctx context.Context, method, path, ctype string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(d.BaseURL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	tok, err := d.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("e2ee: token: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	hc := d.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("e2ee: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("e2ee: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error protocol.Error `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Code != "" {
			return nil, fmt.Errorf("e2ee: %s %s: %w", method, path, &e.Error)
		}
		return nil, fmt.Errorf("e2ee: %s %s: HTTP %d", method, path, resp.StatusCode)
	}
	return data, nil
}

func (d *Directory) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	data, err := d.do(ctx, method, path, ctype, body)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("e2ee: %s %s: answer: %w", method, path, err)
		}
	}
	return nil
}

// PutDevice publishes (or replaces) a device's keys; it returns how many one-time
// keys the directory holds for it.
func (d *Directory) PutDevice(ctx context.Context, device string, k DeviceKeys) (int, error) {
	var r struct {
		OneTimeKeys int `json:"oneTimeKeys"`
	}
	err := d.json(ctx, http.MethodPut, "/api/v1/keys/devices/"+url.PathEscape(device), k, &r)
	return r.OneTimeKeys, err
}

// AddOneTimeKeys uploads more one-time keys (none: just the count) and returns the count held.
func (d *Directory) AddOneTimeKeys(ctx context.Context, device string, keys []PreKey) (int, error) {
	var r struct {
		OneTimeKeys int `json:"oneTimeKeys"`
	}
	if keys == nil {
		keys = []PreKey{}
	}
	err := d.json(ctx, http.MethodPost, "/api/v1/keys/devices/"+url.PathEscape(device)+"/one-time-keys",
		map[string]any{"oneTimeKeys": keys}, &r)
	return r.OneTimeKeys, err
}

// RevokeDevice removes a device's keys; its chat partners are told.
func (d *Directory) RevokeDevice(ctx context.Context, device string) error {
	return d.json(ctx, http.MethodDelete, "/api/v1/keys/devices/"+url.PathEscape(device), nil, nil)
}

// Devices lists user's devices. With claim, each comes with a one-time key (when one
// is left), consumed by this call; without, none is consumed.
func (d *Directory) Devices(ctx context.Context, user string, claim bool) ([]DirectoryDevice, error) {
	var r struct {
		Devices []DirectoryDevice `json:"devices"`
	}
	path := "/api/v1/keys/users/" + url.PathEscape(user)
	if !claim {
		path += "?claim=false"
	}
	err := d.json(ctx, http.MethodGet, path, nil, &r)
	return r.Devices, err
}

// Lookup is a Lookup over Devices without claiming.
func (d *Directory) Lookup(ctx context.Context, user string) (map[string]Bundle, error) {
	devs, err := d.Devices(ctx, user, false)
	if err != nil {
		return nil, err
	}
	out := map[string]Bundle{}
	for _, dv := range devs {
		if b, err := ParseBundle(dv.IdentityKey); err == nil {
			out[dv.DeviceID] = b
		}
	}
	return out, nil
}

// Members returns the user IDs of chat's members.
func (d *Directory) Members(ctx context.Context, chat string) ([]string, error) {
	var r struct {
		Members []struct {
			UserID string `json:"userId"`
		} `json:"members"`
	}
	if err := d.json(ctx, http.MethodGet, "/api/v1/chats/"+url.PathEscape(chat)+"/members", nil, &r); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(r.Members))
	for _, m := range r.Members {
		out = append(out, m.UserID)
	}
	return out, nil
}

// CreateChat creates an encrypted chat ("direct" or "group") with members and
// returns its ID.
func (d *Directory) CreateChat(ctx context.Context, kind, name string, members ...string) (string, error) {
	var r struct {
		ID string `json:"id"`
	}
	err := d.json(ctx, http.MethodPost, "/api/v1/chats", map[string]any{"type": kind, "name": name, "members": members, "encrypted": true}, &r)
	return r.ID, err
}

// Upload stores ciphertext as opaque media for chat and returns its media ID.
func (d *Directory) Upload(ctx context.Context, chat string, ciphertext []byte) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="file"; filename="encrypted.bin"`}
	h["Content-Type"] = []string{"application/octet-stream"}
	part, err := mw.CreatePart(h)
	if err != nil {
		return "", err
	}
	if _, err := part.Write(ciphertext); err != nil {
		return "", err
	}
	if err := mw.Close(); err != nil {
		return "", err
	}
	data, err := d.do(ctx, http.MethodPost, "/api/v1/media?chatId="+url.QueryEscape(chat), mw.FormDataContentType(), &body)
	if err != nil {
		return "", err
	}
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &r); err != nil || r.ID == "" {
		return "", fmt.Errorf("e2ee: upload answer %q: %v", data, err)
	}
	return r.ID, nil
}

// Download returns media's bytes (the ciphertext).
func (d *Directory) Download(ctx context.Context, mediaID string) ([]byte, error) {
	return d.do(ctx, http.MethodGet, "/api/v1/media/"+url.PathEscape(mediaID), "", nil)
}
