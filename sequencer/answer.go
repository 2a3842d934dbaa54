package sequencer

import (
	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/subjects"
	"go.uber.org/zap"
)

// Answers. Each ingress message's publisher learns the sequencer's
// decision on the core subject it named in protocol.HeaderAnswer: an ack frame
// with the chat seq once the message is in NATTER_LOG (duplicate with the original
// seq when the chat already held its messageId; no seq for an operation that
// changed nothing), or an error frame when it was refused. The gateway acks its
// client only then, so an ack means "sequenced".
//
// The subject is believed only under the publisher's own answer prefix
// (subjects.AnswerAllowed: natter.answer.gw.> for a gateway's message, natter.answer.svc.>
// for a service's): a header can never make the sequencer publish on a user's
// subject or anywhere else. NATS permissions allow the sequencer natter.answer.>
// only. A message without a usable answer subject (published before answers
// existed, or by a client that waits for nothing) is refused as before, on its
// sender's user subject.
//
// Answers are core NATS, at most once: a lost answer leaves the publisher to time
// out and resend with the same messageId, which the exactly-once check (ids.go)
// answers with the original seq.

// answerSubject returns the subject in's answer goes to ("" for none).
func (s *Sequencer) answerSubject(in *ingress) string {
	a := in.header.Get(protocol.HeaderAnswer)
	if a == "" {
		return ""
	}
	origin := subjects.OriginGateway
	if _, o, ok := s.deps.Subjects.InOrigin(in.subject); ok {
		origin = o
	}
	if !s.deps.Subjects.AnswerAllowed(origin, a) {
		s.log.Warn("ignoring an answer subject outside the publisher's answer prefix",
			zap.String("subject", in.subject), zap.String("answer", a))
		return ""
	}
	return a
}

// answerAck tells the publisher that m is sequenced as seq (0: an operation that
// changed nothing, not sequenced), duplicate if it was sequenced before.
func (s *Sequencer) answerAck(subject string, m *protocol.Message, seq uint64, duplicate bool) {
	if subject == "" {
		return
	}
	f := protocol.Frame{Type: protocol.FrameAck, ChatID: m.ChatID, MessageID: m.MessageID, Seq: seq, Duplicate: duplicate}
	if err := s.deps.NC.Publish(subject, protocol.EncodeFrame(&f)); err != nil {
		s.log.Debug("answer publish failed", zap.String("chat_id", m.ChatID), zap.Error(err))
	}
}

// reject tells m's publisher (on answer, else the sender's devices on its user
// subject) that m was refused.
func (s *Sequencer) reject(answer, sender string, m *protocol.Message, e *protocol.Error) {
	f := protocol.ErrorFrame(e, m.ChatID, m.MessageID, "")
	subject := answer
	if subject == "" {
		subject = s.deps.Subjects.User(sender)
	}
	_ = s.deps.NC.Publish(subject, protocol.EncodeFrame(f))
}
