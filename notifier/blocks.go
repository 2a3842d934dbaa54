package notifier

import (
	"context"
	"time"
)

// Blocking (docs/protocol.md, "Blocking"): a user's message never causes a
// notification to someone who blocks them, and a notification of a window another
// sender opened does not preview a blocked sender's message.

// BlockCacheTTL is how long the notifier trusts a block list it read when no change
// of it is announced. The gateways announce every block and unblock
// (pkg/blockchanges) and the notifier applies the announcements it received before
// each check, so a change applies to the next notification; the TTL bounds a change
// whose announcement was lost (a NATS reconnect).
var BlockCacheTTL = time.Minute

// blockLists is what the notifier's block checks read: the cache with the announced
// changes applied (blockchanges.Follower, from Run).
type blockLists interface {
	Blocks(ctx context.Context, blocker, blocked string) (bool, error)
}
