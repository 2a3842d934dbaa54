package protocol

import (
	"fmt"
	"time"
)

// Code is a stable error code, part of the documented protocol: clients switch on it.
type Code string

// Error codes. Never rename one: add a new code instead.
const (
	CodeBadRequest    Code = "bad_request"    // malformed JSON or a missing/invalid field
	CodeUnknownType   Code = "unknown_type"   // frame type not in the protocol
	CodeInvalidID     Code = "invalid_id"     // chat/user/message ID fails ^[A-Za-z0-9_-]{1,64}$
	CodeTooLarge      Code = "too_large"      // frame, message or body over its limit
	CodeUnauthorized  Code = "unauthorized"   // token missing, malformed, wrongly signed
	CodeTokenExpired  Code = "token_expired"  // token past exp: refresh and reconnect
	CodeForbidden     Code = "forbidden"      // authenticated but not allowed (e.g. not admin)
	CodeNotMember     Code = "not_member"     // not a member of the chat
	CodeNotFound      Code = "not_found"      // chat, message or media unknown
	CodeConflict      Code = "conflict"       // request contradicts current state
	CodeRateLimited   Code = "rate_limited"   // slow down; retry after a pause
	CodeSlowConsumer  Code = "slow_consumer"  // connection closed: its send queue overflowed; resume with sync
	CodeUnavailable   Code = "unavailable"    // a dependency (NATS, store) is down; retry
	CodeInternal      Code = "internal"       // a bug or unexpected failure; retry may help
	CodeShuttingDown  Code = "shutting_down"  // server draining: reconnect elsewhere
	CodeTokenExpiring Code = "token_expiring" // notice: the token expires soon; send connect with a new one
	CodeBadHost       Code = "bad_host"       // dev server: the Host header is not a loopback name (DNS rebinding)
	CodeStorageFull   Code = "storage_full"   // the server's message store is full: not stored; resend the same messageId later (media: retry the upload later)
	CodeQuotaExceeded Code = "quota_exceeded" // the user's media uploads would pass their storage quota
	CodeBlocked       Code = "blocked"        // the other user blocks the caller: no direct chat, add or send (docs/protocol.md, "Blocking")
	CodeGroupFull     Code = "group_full"     // the group would pass gateway.max-group-members (or sequencer.max-group-members)
)

// Retryable reports whether a client may retry the same request unchanged later.
func (c Code) Retryable() bool {
	switch c {
	case CodeRateLimited, CodeUnavailable, CodeInternal, CodeShuttingDown, CodeSlowConsumer, CodeTokenExpired, CodeStorageFull:
		return true
	}
	return false
}

// Error is an error with a stable Code, shown to clients.
type Error struct {
	Code    Code
	Message string
	// RetryAfter, for rate_limited, is when the same request would pass (0:
	// unknown, back off). REST sends it as Retry-After and retryAfterMs.
	RetryAfter time.Duration
	// Cause is the server-side failure behind a CodeUnavailable or CodeInternal
	// error, for the server's log where the error is answered; never sent to
	// clients. Nil for refusals of the request itself.
	Cause error
}

// WithCause returns a copy of e with Cause set to cause.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.Cause = cause
	return &c
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WebSocket close codes Natter uses besides the standard ones (1000 normal, 1001 going
// away, 1008 policy, 1009 too big, 1011 internal). The close reason starts with the
// error Code.
const (
	CloseUnauthorized = 4001 // token missing or invalid: get a new token
	CloseTokenExpired = 4002 // token expired: refresh, then reconnect
	CloseSlowConsumer = 4008 // send queue overflowed: reconnect and sync
	CloseRateLimited  = 4029 // too many connections or frames: back off
)
