package sequencer

import (
	"context"
	"strings"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"go.uber.org/zap"
)

// Blocking in direct chats (docs/protocol.md, "Blocking"): a user whom the other
// member of a direct chat blocks cannot send into it, whatever path the message
// took: a gateway's (WebSocket, SSE, REST) or a backend service posting as that
// user. The sequencer is the one place every send passes, so the rule is here;
// gateways also refuse REST posts early, for a synchronous answer.

// BlockCacheTTL is how long the sequencer trusts a user's block list it read when
// no change of it is announced. A gateway announces every block and unblock
// (pkg/blockchanges), and the sequencer applies the announcements it received
// before each check, so a change applies to the next message; the TTL only bounds
// a change whose announcement was lost (a NATS reconnect, a cluster's routes).
var BlockCacheTTL = time.Minute

// blockLists is what checkBlocked reads: the store's block lists through the
// cache, with the announced changes applied (blockchanges.Follower, from Run).
type blockLists interface {
	Blocks(ctx context.Context, blocker, blocked string) (bool, error)
}

// directPrefix starts every direct chat's ID (ids.Direct); group IDs never have a
// '-'.
const directPrefix = "dm-"

// checkBlocked refuses m with CodeBlocked when it is a user's message (not a chat
// change) into a direct chat whose other member blocks the sender. Taking one's
// own message back (delete) stays allowed. When the store cannot answer, the
// message goes through (as sends do while the store is down) and the failure is
// logged.
func (s *Sequencer) checkBlocked(ctx context.Context, st *chatState, m *protocol.Message, tr trust) *protocol.Error {
	if tr == trustChange || m.MessageType == protocol.TypeSystem || m.MessageType == protocol.TypeDelete ||
		!strings.HasPrefix(m.ChatID, directPrefix) || len(st.members) != 2 {
		return nil
	}
	if _, member := st.members[m.SenderID]; !member {
		return nil // a service posting as someone else: not this rule's case
	}
	for other := range st.members {
		if other == m.SenderID {
			continue
		}
		blocked, err := s.blockLists.Blocks(ctx, other, m.SenderID)
		if err != nil {
			s.log.Warn("block lookup failed; message let through", zap.String("chat_id", m.ChatID), zap.Error(err))
			return nil
		}
		if blocked {
			return protocol.Errorf(protocol.CodeBlocked, "%s does not accept your messages", other)
		}
	}
	return nil
}
