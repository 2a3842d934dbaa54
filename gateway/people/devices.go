package people

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/natter-chat/natter/gateway/internal/httpx"
	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
)

// Push devices: a client registers the push token of the device it runs on, so that
// notifications (webhook and natter.notify.<uid>) carry the user's devices and a
// push gateway needs no mapping of its own (docs/presence.md, "Push devices").
//
//	POST   /api/v1/devices              {deviceId, platform, provider, token}: register or replace
//	GET    /api/v1/devices              the caller's devices
//	DELETE /api/v1/devices/{deviceId}   remove one (on sign-out)
//
// Devices are the caller's own: there is no way to name another user. Service
// tokens have no devices (403).

// deviceRequest is the body of POST /api/v1/devices.
type deviceRequest struct {
	DeviceID string `json:"deviceId"`
	Platform string `json:"platform"`
	Provider string `json:"provider"`
	Token    string `json:"token"`
}

// deviceBody is one device in answers. The token is the caller's own: it is shown
// back so a client can check what is registered.
type deviceBody struct {
	DeviceID  string    `json:"deviceId"`
	Platform  string    `json:"platform"`
	Provider  string    `json:"provider"`
	Token     string    `json:"token"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func deviceView(d store.Device) deviceBody {
	return deviceBody{DeviceID: d.DeviceID, Platform: d.Platform, Provider: d.Provider, Token: d.Token, UpdatedAt: d.UpdatedAt.UTC()}
}

var errServiceDevices = protocol.Errorf(protocol.CodeForbidden, "service tokens have no push devices: register devices with a user's token")

// PutDevice serves POST /api/v1/devices.
func (s *Service) PutDevice(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		s.fail(w, errServiceDevices)
		return
	}
	var req deviceRequest
	if err := s.deps.Body.Decode(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if err := protocol.ValidID("device", req.DeviceID); err != nil {
		s.fail(w, err)
		return
	}
	if len(req.Token) > store.MaxDeviceToken {
		s.fail(w, protocol.Errorf(protocol.CodeTooLarge, "token is %d bytes, the limit is %d", len(req.Token), store.MaxDeviceToken))
		return
	}
	d := store.Device{UserID: id.UserID, DeviceID: req.DeviceID, Platform: req.Platform, Provider: req.Provider,
		Token: req.Token, UpdatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	switch err := s.deps.Store.PutDevice(r.Context(), d); {
	case errors.Is(err, store.ErrBadDevice):
		s.fail(w, protocol.Errorf(protocol.CodeBadRequest, "%s", strings.Replace(err.Error(), "store: invalid device: ", "invalid push device: ", 1)))
		return
	case errors.Is(err, store.ErrTooManyDevices):
		s.fail(w, protocol.Errorf(protocol.CodeConflict, "at most %d push devices per user: remove one first (DELETE /api/v1/devices/{deviceId})", store.MaxDevicesPerUser))
		return
	case err != nil:
		s.fail(w, httpx.StoreUnavailable(fmt.Errorf("put device: %w", err))) // logged once, with its cause, by fail
		return
	}
	httpx.WriteJSON(w, http.StatusOK, deviceView(d))
}

// Devices serves GET /api/v1/devices.
func (s *Service) Devices(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		s.fail(w, errServiceDevices)
		return
	}
	ds, err := s.deps.Store.Devices(r.Context(), id.UserID)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(fmt.Errorf("list devices: %w", err))) // logged once, with its cause, by fail
		return
	}
	out := make([]deviceBody, 0, len(ds))
	for _, d := range ds {
		out = append(out, deviceView(d))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"devices": out})
}

// DeleteDevice serves DELETE /api/v1/devices/{deviceId}.
func (s *Service) DeleteDevice(w http.ResponseWriter, r *http.Request, id auth.Identity) {
	if id.Service {
		s.fail(w, errServiceDevices)
		return
	}
	dev := r.PathValue("id")
	if err := protocol.ValidID("device", dev); err != nil {
		s.fail(w, err)
		return
	}
	removed, err := s.deps.Store.DeleteDevice(r.Context(), id.UserID, dev)
	if err != nil {
		s.fail(w, httpx.StoreUnavailable(fmt.Errorf("delete device: %w", err))) // logged once, with its cause, by fail
		return
	}
	if !removed {
		s.fail(w, protocol.Errorf(protocol.CodeNotFound, "no push device %s", dev))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deviceId": dev, "removed": true})
}
