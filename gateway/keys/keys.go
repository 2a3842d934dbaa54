// Package keys is the key directory of end-to-end encrypted chats (docs/e2ee.md, "Key directory"):
//
//	PUT    /api/v1/keys/devices/{deviceId}                 publish a device's keys (and one-time keys)
//	POST   /api/v1/keys/devices/{deviceId}/one-time-keys   add one-time keys; an empty list reads the count
//	DELETE /api/v1/keys/devices/{deviceId}                 revoke a device
//	GET    /api/v1/keys/users/{userId}                     claim a bundle per device of a user
//	GET    /api/v1/keys/users/{userId}?claim=false         the same without taking one-time keys
//
// Devices are the caller's own; bundles may be claimed of oneself and of users the
// caller shares a chat with (anyone else: 404, as for a user who does not exist).
// The server keeps keys as opaque base64 text and never parses them. A key change
// (a new device, a different identity key, a revocation) is announced as a
// sequenced system message (protocol.EventDeviceKeysChanged, EventDeviceRevoked)
// in every encrypted chat of the user, so that partners warn and rotate group keys. The store
// records whether the current state was announced: if announcing fails part-way,
// the call answers unavailable and repeating it announces again (chats that were
// told already are told twice: a repeated warning is harmless, a missing one is
// not). Service tokens have no devices (403).
package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/ids"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Store is the part of the store the key directory uses.
type Store interface {
	store.KeyStore
	// SharesChat: claims are allowed of users the caller shares a chat with.
	SharesChat(ctx context.Context, user string, others []string) (map[string]bool, error)
	// UserChatsBefore: a key change is announced in each encrypted chat of its user.
	UserChatsBefore(ctx context.Context, userID string, cursor store.ChatListCursor, limit int) ([]store.ChatSummary, error)
}

// Limits are the REST buckets of the key directory (gateway.limits.key-claim-*
// and key-change-*). Each takes one token of user's bucket, or returns a
// *protocol.Error: rate_limited with its RetryAfter, or too_large.
type Limits interface {
	TakeKeyClaim(user string) error
	TakeKeyChange(user string) error
}

// Notices stores system messages in NATTER_IN.
type Notices interface {
	// PublishNotice stores m (a system message in the name of its sender, as a
	// service would send it) in NATTER_IN without waiting for its sequencing; the
	// error is a *protocol.Error the client may retry on.
	PublishNotice(ctx context.Context, m *protocol.Message) error
}

// Deps are what the key directory needs from the gateway.
type Deps struct {
	Store   Store
	Limits  Limits
	Notices Notices
	// Body bounds JSON request bodies (gateway.max-body-bytes, body-timeout).
	Body httpx.Body
}

// Service serves the key directory's routes. It is safe for concurrent use.
type Service struct {
	deps Deps
	log  *zap.Logger
}

// New returns the key directory.
func New(deps Deps, log *zap.Logger) *Service { return &Service{deps: deps, log: log} }

// fail writes err (httpx.Fail).
func (s *Service) fail(w http.ResponseWriter, err error) { httpx.Fail(s.log, w, err) }

// putKeysRequest is the body of PUT /api/v1/keys/devices/{deviceId}.
type putKeysRequest struct {
	IdentityKey  string         `json:"identityKey"`
	SignedPreKey *store.PreKey  `json:"signedPreKey"`
	OneTimeKeys  []store.PreKey `json:"oneTimeKeys"`
}

// oneTimeKeysRequest is the body of POST .../one-time-keys.
type oneTimeKeysRequest struct {
	OneTimeKeys []store.PreKey `json:"oneTimeKeys"`
}

// keyBundle is one device in GET /api/v1/keys/users/{userId}.
type keyBundle struct {
	DeviceID     string        `json:"deviceId"`
	IdentityKey  string        `json:"identityKey"`
	SignedPreKey store.PreKey  `json:"signedPreKey"`
	OneTimeKey   *store.PreKey `json:"oneTimeKey"`
}

var errServiceKeys = protocol.Errorf(protocol.CodeForbidden, "service tokens have no devices and claim no keys: use a user's token")

// keysError maps the key directory's errors to client errors.
func keysError(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrBadKeys):
		return protocol.Errorf(protocol.CodeBadRequest, "%s", strings.Replace(err.Error(), "store: invalid keys: ", "invalid keys: ", 1))
	case errors.Is(err, store.ErrTooManyOneTimeKeys):
		return protocol.Errorf(protocol.CodeTooLarge, "%s: upload fewer (claims consume them; a device holds at most %d)",
			strings.TrimPrefix(err.Error(), "store: "), store.MaxOneTimeKeys)
	case errors.Is(err, store.ErrTooManyKeyDevices):
		return protocol.Errorf(protocol.CodeConflict, "at most %d devices with keys per user: revoke one first (DELETE /api/v1/keys/devices/{deviceId})", store.MaxKeyDevicesPerUser)
	}
	return httpx.StoreUnavailable(fmt.Errorf("%s: %w", what, err))
}

// path is the ID a key directory request names in its path, a device's or a
// user's (kind), checked; false when the request was refused (a service token has
// no keys, or the ID is invalid) and answered.
func (s *Service) path(w http.ResponseWriter, r *http.Request, id auth.Identity, kind string) (string, bool) {
	if id.Service {
		s.fail(w, errServiceKeys)
		return "", false
	}
	v := r.PathValue("id")
	if err := protocol.ValidID(kind, v); err != nil {
		s.fail(w, err)
		return "", false
	}
	return v, true
}

// Put serves PUT /api/v1/keys/devices/{deviceId}: publish (or replace) a device's
// keys and add one-time keys; a key change is charged and announced.
func (s *Service) Put(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	dev, ok := s.path(w, r, id, "device")
	if !ok {
		return
	}
	var req putKeysRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.SignedPreKey == nil {
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "signedPreKey is required: {id, key, signature}"))
		return
	}
	k := store.DeviceKeys{UserID: id.UserID, DeviceID: dev, IdentityKey: req.IdentityKey, SignedPreKey: *req.SignedPreKey,
		UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := store.ValidateDeviceKeys(k); err != nil {
		s.fail(w, keysError(err, "put keys"))
		return
	}
	if err := store.ValidateOneTimeKeys(req.OneTimeKeys); err != nil {
		s.fail(w, keysError(err, "put keys"))
		return
	}
	// A key change is charged before it is stored, so a refused one changes nothing.
	current, err := s.deps.Store.DeviceKeys(ctx, id.UserID)
	if err != nil {
		s.fail(w, keysError(err, "put keys"))
		return
	}
	if isKeyChange(current, k) {
		if err := s.deps.Limits.TakeKeyChange(id.UserID); err != nil {
			s.fail(w, err)
			return
		}
	}
	stored, left, err := s.deps.Store.PutDeviceKeys(ctx, k, req.OneTimeKeys)
	if err != nil {
		s.fail(w, keysError(err, "put keys"))
		return
	}
	if !stored.Announced {
		if err := s.announce(ctx, id.UserID, stored, false); err != nil {
			s.fail(w, err)
			return
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deviceId": dev, "oneTimeKeys": left})
}

// isKeyChange reports whether storing k changes the identity of a device among
// current (or adds one).
func isKeyChange(current []store.DeviceKeys, k store.DeviceKeys) bool {
	for _, c := range current {
		if c.DeviceID == k.DeviceID {
			return c.Revoked || c.IdentityKey != k.IdentityKey
		}
	}
	return true
}

// AddOneTimeKeys serves POST /api/v1/keys/devices/{deviceId}/one-time-keys: add
// to the device's supply and answer its size (an empty list only reads it).
func (s *Service) AddOneTimeKeys(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	dev, ok := s.path(w, r, id, "device")
	if !ok {
		return
	}
	var req oneTimeKeysRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	n, err := s.deps.Store.AddOneTimeKeys(r.Context(), id.UserID, dev, req.OneTimeKeys)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "device %s has no keys: publish them first (PUT /api/v1/keys/devices/%s)", dev, dev))
		return
	}
	if err != nil {
		s.fail(w, keysError(err, "add one-time keys"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deviceId": dev, "oneTimeKeys": n})
}

// Revoke serves DELETE /api/v1/keys/devices/{deviceId}: revoke a device and
// announce it; repeating a revocation finishes its announcement.
func (s *Service) Revoke(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	dev, ok := s.path(w, r, id, "device")
	if !ok {
		return
	}
	current, err := s.deps.Store.DeviceKeys(ctx, id.UserID)
	if err != nil {
		s.fail(w, keysError(err, "revoke keys"))
		return
	}
	var found *store.DeviceKeys
	for i := range current {
		if current[i].DeviceID == dev {
			found = &current[i]
		}
	}
	if found == nil {
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "no device %s with keys", dev))
		return
	}
	if !found.Revoked { // a repeat only finishes the announcement: not charged again
		if err := s.deps.Limits.TakeKeyChange(id.UserID); err != nil {
			s.fail(w, err)
			return
		}
	}
	old, err := s.deps.Store.RevokeDeviceKeys(ctx, id.UserID, dev)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "no device %s with keys", dev))
		return
	}
	if err != nil {
		s.fail(w, keysError(err, "revoke keys"))
		return
	}
	if err := s.announce(ctx, id.UserID, old, true); err != nil {
		s.fail(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deviceId": dev, "revoked": true})
}

// Claim serves GET /api/v1/keys/users/{userId}: a bundle per device of the user,
// each with one one-time key taken (?claim=false: looked up, none taken).
func (s *Service) Claim(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	ctx := r.Context()
	user, ok := s.path(w, r, id, "user")
	if !ok {
		return
	}
	claim := true
	switch v := r.URL.Query().Get("claim"); v {
	case "", "true":
	case "false":
		claim = false
	default:
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "claim must be true or false"))
		return
	}
	if err := s.deps.Limits.TakeKeyClaim(id.UserID); err != nil {
		s.fail(w, err)
		return
	}
	if user != id.UserID {
		shared, err := s.deps.Store.SharesChat(ctx, id.UserID, []string{user})
		if err != nil {
			s.fail(w, httpx.StoreUnavailable(fmt.Errorf("claim keys: %w", err)))
			return
		}
		if !shared[user] {
			s.fail(w, protocol.Errorf(protocol.CodeNotFound, "no user %s that you share a chat with", user))
			return
		}
	}
	bs, err := s.bundles(ctx, user, claim)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(fmt.Errorf("claim keys: %w", err)))
		return
	}
	out := make([]keyBundle, 0, len(bs))
	for _, b := range bs {
		out = append(out, keyBundle{DeviceID: b.DeviceID, IdentityKey: b.IdentityKey, SignedPreKey: b.SignedPreKey, OneTimeKey: b.OneTimeKey})
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"userId": user, "devices": out})
}

// bundles returns user's bundles: claimed (one one-time key each), or only looked
// up (no one-time keys) when claim is false.
func (s *Service) bundles(ctx context.Context, user string, claim bool) ([]store.KeyBundle, error) {
	if claim {
		return s.deps.Store.ClaimKeys(ctx, user)
	}
	ks, err := s.deps.Store.DeviceKeys(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []store.KeyBundle
	for _, k := range ks {
		if !k.Revoked {
			out = append(out, store.KeyBundle{DeviceKeys: k})
		}
	}
	return out, nil
}

// announceParallel is how many chats a key change is announced in at once.
const announceParallel = 8

// announce announces k's current state (or its revocation) as a system message
// in every encrypted chat of user, then records that it was announced. It returns a client
// error if some chat could not be told: the caller repeats the request.
func (s *Service) announce(ctx context.Context, user string, k store.DeviceKeys, revoked bool) error {
	ev := protocol.SystemEvent{Event: protocol.EventDeviceKeysChanged, UserID: user, DeviceID: k.DeviceID}
	if revoked {
		ev.Event = protocol.EventDeviceRevoked
	}
	meta, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	// A fresh ID per attempt: an ID derived from the keys would let NATTER_IN drop
	// the announcement of a device that went back to an earlier identity key.
	msgID := ids.New()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(announceParallel)
	var cur store.ChatListCursor
	for {
		page, err := s.deps.Store.UserChatsBefore(ctx, user, cur, 100)
		if err != nil {
			_ = eg.Wait()
			return httpx.StoreUnavailable(fmt.Errorf("announce key change: %w", err))
		}
		for _, c := range page {
			if !c.Encrypted {
				// Only an encrypted chat's members act on key changes; in a plain
				// chat the event would be noise in its history and chat list.
				continue
			}
			m := &protocol.Message{ChatID: c.ID, MessageID: msgID, SenderID: user, MessageType: protocol.TypeSystem, Meta: meta}
			eg.Go(func() error {
				return s.deps.Notices.PublishNotice(ectx, m) // stored is enough
			})
		}
		if len(page) < 100 {
			break
		}
		last := page[len(page)-1]
		cur = store.ChatListCursor{Activity: last.LastActivity, ChatID: last.ID}
	}
	if err := eg.Wait(); err != nil {
		s.log.Warn("key change not announced in every chat", zap.String("user_id", user), zap.String("event", ev.Event), zap.Error(err))
		return protocol.Errorf(protocol.CodeUnavailable, "the key change is stored but not yet announced in every chat: repeat this request")
	}
	if err := s.deps.Store.MarkKeysAnnounced(ctx, user, k.DeviceID, k.IdentityKey, revoked); err != nil {
		return httpx.StoreUnavailable(fmt.Errorf("announce key change: %w", err))
	}
	return nil
}
