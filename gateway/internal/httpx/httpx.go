// Package httpx holds what the gateway's REST handlers share, whichever package
// they live in: the JSON answer and error shapes (docs/openapi.yaml, components
// Error), the HTTP status of each protocol error code, bounded JSON request bodies,
// and the handler type of routes that need a bearer token. It keeps no state: each
// caller passes its own logger and limits.
package httpx

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"go.uber.org/zap"
)

// AuthedHandler is the handler of a route that needs a bearer token: the gateway's
// route table verifies the token and passes the caller's identity.
type AuthedHandler func(w http.ResponseWriter, r *http.Request, id auth.Identity)

// ErrorBody is the JSON of every REST error.
type ErrorBody struct {
	Error struct {
		Code    protocol.Code `json:"code"`
		Message string        `json:"message"`
		Retry   bool          `json:"retry"`
		// RetryAfterMs is when a rate_limited request would pass, if known.
		RetryAfterMs int64 `json:"retryAfterMs,omitempty"`
	} `json:"error"`
}

// WriteJSON writes v as a JSON answer with status; answers are never cached and
// never sniffed.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes e as an ErrorBody with status: a 401 names the bearer realm,
// an error with a RetryAfter sets Retry-After (whole seconds, rounded up) and
// retryAfterMs.
func WriteError(w http.ResponseWriter, status int, e *protocol.Error) {
	var b ErrorBody
	b.Error.Code, b.Error.Message, b.Error.Retry = e.Code, e.Message, e.Code.Retryable()
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="natter"`)
	}
	if e.RetryAfter > 0 {
		b.Error.RetryAfterMs = max(1, e.RetryAfter.Milliseconds())
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	WriteJSON(w, status, b)
}

// Status maps a protocol error code to its HTTP status (400 for the codes it does
// not name).
func Status(c protocol.Code) int {
	switch c {
	case protocol.CodeUnauthorized, protocol.CodeTokenExpired:
		return http.StatusUnauthorized
	case protocol.CodeForbidden, protocol.CodeNotMember, protocol.CodeBlocked:
		return http.StatusForbidden
	case protocol.CodeNotFound:
		return http.StatusNotFound
	case protocol.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case protocol.CodeConflict, protocol.CodeGroupFull:
		return http.StatusConflict
	case protocol.CodeRateLimited:
		return http.StatusTooManyRequests
	case protocol.CodeUnavailable, protocol.CodeShuttingDown:
		return http.StatusServiceUnavailable
	case protocol.CodeStorageFull:
		return http.StatusInsufficientStorage
	case protocol.CodeInternal:
		return http.StatusInternalServerError
	case protocol.CodeBadHost:
		return http.StatusMisdirectedRequest
	case protocol.CodeQuotaExceeded:
		return http.StatusInsufficientStorage
	}
	return http.StatusBadRequest
}

// Fail writes err with its status: a *protocol.Error as it is (logged at warn,
// once, here, when it carries the dependency failure that caused it), anything
// else as 500 internal, logged at error.
func Fail(log *zap.Logger, w http.ResponseWriter, err error) {
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		log.Error("request failed", zap.Error(err))
		pe = protocol.Errorf(protocol.CodeInternal, "internal error")
	} else if pe.Cause != nil { // a dependency failed: logged here, once, with why
		log.Warn("request failed", zap.String("code", string(pe.Code)), zap.String("answer", pe.Message), zap.Error(pe.Cause))
	}
	WriteError(w, Status(pe.Code), pe)
}

// RateLimited is the error every rate limit refusal carries.
func RateLimited(format string, args ...any) *protocol.Error {
	return protocol.Errorf(protocol.CodeRateLimited, format, args...)
}

// Refuse writes a rate_limited HTTP 429 with a Retry-After hint of one second.
func Refuse(w http.ResponseWriter, e *protocol.Error) {
	w.Header().Set("Retry-After", strconv.Itoa(1))
	WriteError(w, http.StatusTooManyRequests, e)
}

// ErrNotSupported answers a feature the configured store backend lacks (HTTP 501,
// written by the caller).
var ErrNotSupported = protocol.Errorf(protocol.CodeNotFound, "not supported by this server's store backend")

// StoreUnavailable is the client error for a failed store call: ErrNotSupported
// for store.ErrNotSupported, else unavailable (retryable) with err as its cause.
func StoreUnavailable(err error) error {
	if errors.Is(err, store.ErrNotSupported) {
		return ErrNotSupported
	}
	return protocol.Errorf(protocol.CodeUnavailable, "store unavailable; retry").WithCause(err)
}

// Body bounds a JSON request body: MaxBytes (gateway.max-body-bytes) and the
// deadline the edge guard set for it, Timeout (gateway.body-timeout), named in
// the error when it passes.
type Body struct {
	MaxBytes int64
	Timeout  time.Duration
}

// Decode reads a JSON body of at most b.MaxBytes into v, refusing unknown fields
// and trailing data. Its errors are *protocol.Error: too_large over the limit,
// bad_request for the rest.
func (b Body) Decode(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.MaxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return protocol.Errorf(protocol.CodeTooLarge, "body over %d bytes", b.MaxBytes)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return protocol.Errorf(protocol.CodeBadRequest, "body not received within %s (gateway.body-timeout): send it at once", b.Timeout)
		}
		return protocol.Errorf(protocol.CodeBadRequest, "read body: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "malformed JSON body: %v", err)
	}
	if dec.More() {
		return protocol.Errorf(protocol.CodeBadRequest, "trailing data after the JSON body")
	}
	return nil
}

// FailStore is Fail, but answers ErrNotSupported with 501 Not Implemented.
func FailStore(log *zap.Logger, w http.ResponseWriter, err error) {
	if err == ErrNotSupported {
		WriteError(w, http.StatusNotImplemented, ErrNotSupported)
		return
	}
	Fail(log, w, err)
}

// QueryInt reads the integer query parameter name: def when absent, else a value
// in lo..hi or a bad_request error.
func QueryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, protocol.Errorf(protocol.CodeBadRequest, "%s must be an integer %d..%d", name, lo, hi)
	}
	return n, nil
}
