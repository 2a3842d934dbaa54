package gateway

import "github.com/natter-chat/natter/pkg/protocol"

// The sequencer's answers (issue 18).
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
