package gateway

import (
	"errors"

	"github.com/natter-chat/natter/pkg/natsutil"
	"github.com/natter-chat/natter/pkg/protocol"
)

// The sequencer's answers.
//
// A send is acked to its client only once the sequencer decided on it: the ack then
// carries the chat seq (duplicate: true and the original seq when the chat already
// held its messageId, however long ago), and a refusal comes back as an error frame
// for that messageId. Each send names, in protocol.HeaderAnswer, a subject of this
// gateway's own (<prefix>.answer.gw.<random>.<n>); the sequencer publishes its
// decision there after the append (sequencer/answer.go), and the gateway's
// answer.Waiter (one subscription) hands it to the send that waits for it.
//
// The store ack from NATTER_IN still comes first: a connection's next frame is read
// only once its send is stored (sender FIFO), but it does not wait for the answer,
// so several sends of one connection may await theirs (pipelined). An answer that
// does not come within gateway.publish-timeout after the store ack gives the
// client unavailable ("resend it with the same messageId"): safe, since a resend
// is answered with the original seq whenever it comes.

// errNoAnswer is the client's error for a stored send the sequencer did not answer
// within gateway.publish-timeout (compared by identity).
var errNoAnswer = protocol.Errorf(protocol.CodeUnavailable, "message stored but not sequenced in time; resend it with the same messageId")

// noAnswer is the client's error for a stored send that got no answer in time:
// storage_full while JetStream cannot store (the sequencer's appends to NATTER_LOG
// fail with the ingress stored before the disk filled), errNoAnswer otherwise.
// Either way the send is in NATTER_IN and is sequenced once storing works again;
// the client's resend with the same messageId is answered with its seq.
func (g *Gateway) noAnswer() *protocol.Error {
	if st := g.deps.Storage; st != nil {
		return storageNoAnswer(st.Err())
	}
	return errNoAnswer
}

// storageNoAnswer is noAnswer's error when JetStream's storage failed with err
// (nil: it did not).
func storageNoAnswer(err error) *protocol.Error {
	if err != nil {
		if errors.Is(err, natsutil.ErrStorageFull) {
			return protocol.Errorf(protocol.CodeStorageFull, "the server's message store is full: message stored but not sequenced; resend it with the same messageId later")
		}
		return protocol.Errorf(protocol.CodeUnavailable, "the server cannot store messages now: message stored but not sequenced; resend it with the same messageId later")
	}
	return errNoAnswer
}
