package notifier

import (
	"time"
)

// Blocking (docs/protocol.md, "Blocking"): a user's message never causes a
// notification to someone who blocks them, and a notification of a window another
// sender opened does not preview a blocked sender's message.

// BlockCacheTTL is how long the notifier trusts a block list it read: a new block
// stops notifications within this time.
var BlockCacheTTL = 2 * time.Second
