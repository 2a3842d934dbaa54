package notifier

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Sizing of the member cache; package variables so tests can change them.
var (
	// memberCacheSize is how many chats' member lists an instance keeps.
	memberCacheSize = 10_000
	// memberCacheTTL is the safety net of the member cache: an entry older than this
	// is read again from the store. Member changes this instance sequences past are
	// applied at once (invalidate); the TTL bounds how long a change handled only by
	// another notifier instance (they share the log consumer) takes to be seen here.
	memberCacheTTL = 10 * time.Second
)

// memberShards is the number of invalidation generations (chats hash onto them).
const memberShards = 256

// memberCache holds chats' member IDs, read from the store on a miss. The sequencer
// writes a membership change to the store before it appends the system event to the
// log, so once this instance has seen the event, a store read returns the new
// members: invalidate drops the entry when the event passes, in log order, before
// any later message of the chat is handed to a worker.
//
// A load that read the store before an invalidation must not put its (old) list back
// afterwards: each load notes its chat's generation before reading, and add stores
// the result only if the generation is unchanged.
type memberCache struct {
	lru  *expirable.LRU[string, []string]
	seed maphash.Seed

	mu   sync.Mutex // guards gens; held across lru.Add so that add and invalidate are ordered
	gens [memberShards]uint64
}

func newMemberCache() *memberCache {
	return &memberCache{lru: expirable.NewLRU[string, []string](memberCacheSize, nil, memberCacheTTL), seed: maphash.MakeSeed()}
}

func (c *memberCache) shard(chat string) int {
	return int(maphash.String(c.seed, chat) % memberShards)
}

// get returns chat's cached members, or ok false and the generation to pass to add
// with the members read from the store.
func (c *memberCache) get(chat string) (members []string, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ms, ok := c.lru.Get(chat); ok {
		return ms, 0, true
	}
	return nil, c.gens[c.shard(chat)], false
}

// add caches members of chat read from the store after get returned gen, unless chat
// was invalidated meanwhile.
func (c *memberCache) add(chat string, members []string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[c.shard(chat)] == gen {
		c.lru.Add(chat, members)
	}
}

// invalidate drops chat's entry and fails the loads of chat in flight.
func (c *memberCache) invalidate(chat string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[c.shard(chat)]++
	c.lru.Remove(chat)
}

// systemMarker is how every encoded system message on the log says its type
// (protocol.EncodeMessageFrame): a cheap test before decoding.
var systemMarker = []byte(`"messageType":"system"`)

// observe invalidates the cached members of a chat whose membership data (a log
// message) changes. Called for every log message, in log order.
func (c *memberCache) observe(data []byte) {
	if !bytes.Contains(data, systemMarker) {
		return
	}
	m, err := protocol.DecodeMessageFrame(data)
	if err != nil || m.MessageType != protocol.TypeSystem {
		return
	}
	var ev protocol.SystemEvent
	if json.Unmarshal(m.Meta, &ev) != nil {
		return
	}
	switch ev.Event {
	case protocol.EventMemberAdded, protocol.EventMemberRemoved, protocol.EventMemberLeft, protocol.EventChatCreated,
		protocol.EventMembersAdded, protocol.EventMembersRemoved:
		c.invalidate(m.ChatID)
	}
}
