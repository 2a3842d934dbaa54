package presence

import (
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrBadReport is returned (and sent back to the reporter) for a report that is
// malformed or names invalid IDs; it is never retried.
var ErrBadReport = errors.New("presence: bad report")

// errConflict is a lost compare-and-set: the key moved on since it was read.
var errConflict = errors.New("presence: conflict")

// isConflict reports whether err is JetStream refusing a write whose expected last
// revision no longer holds (codes 10071 and, on replicated streams, 10164).
func isConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
