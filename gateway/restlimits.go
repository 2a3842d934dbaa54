package gateway

import (
	"errors"
	"flag"
	"math"
	"sync"
	"time"

	"github.com/natter-chat/natter/pkg/auth"
	"github.com/natter-chat/natter/pkg/protocol"
	"golang.org/x/time/rate"
)

// RESTLimits are the per-principal token buckets of the REST calls that make
// state grow or cause fan-out: creating chats, adding members, posting messages.
// Rates are per second (0.2 is twelve a minute); a rate of 0 turns that bucket off.
// The buckets are per gateway and keyed by the token's user ID, so they hold
// whether or not the user has a connection (unlike the frame buckets in limits.go).
type RESTLimits struct {
	// ChatCreateRate and ChatCreateBurst bound POST /api/v1/chats.
	ChatCreateRate  float64 `yaml:"chat_create_rate"`
	ChatCreateBurst int     `yaml:"chat_create_burst"`
	// MemberAddRate and MemberAddBurst bound members added: one per
	// POST /api/v1/chats/{id}/members, and one per member named when a group is
	// created (so a group cannot be built by creating it whole). A creation naming
	// more members than the burst is refused with too_large.
	MemberAddRate  float64 `yaml:"member_add_rate"`
	MemberAddBurst int     `yaml:"member_add_burst"`
	// ServiceMemberAddRate and ServiceMemberAddBurst are the same for a service
	// token (a backend building large groups with bulk adds of up to 1,000).
	ServiceMemberAddRate  float64 `yaml:"service_member_add_rate"`
	ServiceMemberAddBurst int     `yaml:"service_member_add_burst"`
	// PostRate and PostBurst bound POST /api/v1/chats/{id}/messages with a user
	// token; ServicePostRate and ServicePostBurst with a service token (backend
	// services post for many users, so their bucket is larger).
	PostRate         float64 `yaml:"post_rate"`
	PostBurst        int     `yaml:"post_burst"`
	ServicePostRate  float64 `yaml:"service_post_rate"`
	ServicePostBurst int     `yaml:"service_post_burst"`
	// KeyClaimRate and KeyClaimBurst bound GET /api/v1/keys/users/{userId}: each
	// claim consumes one-time keys of another user's devices, so an unbounded
	// caller could drain them (docs/e2ee.md).
	KeyClaimRate  float64 `yaml:"key_claim_rate"`
	KeyClaimBurst int     `yaml:"key_claim_burst"`
	// KeyChangeRate and KeyChangeBurst bound key changes (a new device, a changed
	// identity key, a revocation): each is announced in every chat of the user.
	KeyChangeRate  float64 `yaml:"key_change_rate"`
	KeyChangeBurst int     `yaml:"key_change_burst"`
	// InviteRate and InviteBurst bound the group invitations one user sends
	// (adds that need the invitee's consent, consent.go), on top of member adds.
	InviteRate  float64 `yaml:"invite_rate"`
	InviteBurst int     `yaml:"invite_burst"`
}

// RegisterFlags registers the gateway.limits.* flags of the REST buckets.
func (c *RESTLimits) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.ChatCreateRate, "gateway.limits.chat-create-rate", 0.2, "chats one user may create per second, over time (0: unlimited)")
	fs.IntVar(&c.ChatCreateBurst, "gateway.limits.chat-create-burst", 20, "burst of chat creations per user")
	fs.Float64Var(&c.MemberAddRate, "gateway.limits.member-add-rate", 2, "members one user may add per second, over time, by adds or at group creation (0: unlimited)")
	fs.IntVar(&c.MemberAddBurst, "gateway.limits.member-add-burst", 200, "burst of member adds per user; also the most members a group may be created with")
	fs.Float64Var(&c.ServiceMemberAddRate, "gateway.limits.service-member-add-rate", 10_000, "members one service token may add per second, over time (0: unlimited)")
	fs.IntVar(&c.ServiceMemberAddBurst, "gateway.limits.service-member-add-burst", 100_000, "burst of member adds per service token")
	fs.Float64Var(&c.PostRate, "gateway.limits.post-rate", 10, "REST message posts per second per user token (0: unlimited)")
	fs.IntVar(&c.PostBurst, "gateway.limits.post-burst", 50, "burst of REST message posts per user token")
	fs.Float64Var(&c.ServicePostRate, "gateway.limits.service-post-rate", 500, "REST message posts per second per service token (0: unlimited)")
	fs.IntVar(&c.ServicePostBurst, "gateway.limits.service-post-burst", 1000, "burst of REST message posts per service token")
	fs.Float64Var(&c.KeyClaimRate, "gateway.limits.key-claim-rate", 1, "key bundle claims (GET /api/v1/keys/users/{userId}) per second per user (0: unlimited)")
	fs.IntVar(&c.KeyClaimBurst, "gateway.limits.key-claim-burst", 60, "burst of key bundle claims per user")
	fs.Float64Var(&c.KeyChangeRate, "gateway.limits.key-change-rate", 0.05, "key changes (new device, changed identity key, revocation) per second per user, each announced in all the user's chats (0: unlimited)")
	fs.IntVar(&c.KeyChangeBurst, "gateway.limits.key-change-burst", 10, "burst of key changes per user")
	fs.Float64Var(&c.InviteRate, "gateway.limits.invite-rate", 0.05, "group invitations one user may send per second, over time (0: unlimited)")
	fs.IntVar(&c.InviteBurst, "gateway.limits.invite-burst", 20, "burst of group invitations per user")
}

// Validate checks the section.
func (c *RESTLimits) Validate() error {
	var errs []error
	for _, b := range []struct {
		name  string
		rate  float64
		burst int
	}{{"chat-create", c.ChatCreateRate, c.ChatCreateBurst}, {"member-add", c.MemberAddRate, c.MemberAddBurst},
		{"service-member-add", c.ServiceMemberAddRate, c.ServiceMemberAddBurst},
		{"post", c.PostRate, c.PostBurst}, {"service-post", c.ServicePostRate, c.ServicePostBurst},
		{"key-claim", c.KeyClaimRate, c.KeyClaimBurst}, {"key-change", c.KeyChangeRate, c.KeyChangeBurst},
		{"invite", c.InviteRate, c.InviteBurst}} {
		if b.rate < 0 || math.IsNaN(b.rate) || math.IsInf(b.rate, 0) {
			errs = append(errs, errors.New("gateway: gateway.limits."+b.name+"-rate must be >= 0"))
		}
		if b.rate > 0 && b.burst < 1 {
			errs = append(errs, errors.New("gateway: gateway.limits."+b.name+"-burst must be >= 1 when its rate is set"))
		}
	}
	return errors.Join(errs...)
}

// restKind names one REST bucket.
type restKind uint8

const (
	restChatCreate restKind = iota
	restMemberAdd
	restPost
	restServicePost
	restKeyClaim
	restKeyChange
	restInvite
	restServiceMemberAdd
)

func (c *RESTLimits) bucketOf(k restKind) (float64, int) {
	switch k {
	case restChatCreate:
		return c.ChatCreateRate, c.ChatCreateBurst
	case restMemberAdd:
		return c.MemberAddRate, c.MemberAddBurst
	case restPost:
		return c.PostRate, c.PostBurst
	case restKeyClaim:
		return c.KeyClaimRate, c.KeyClaimBurst
	case restKeyChange:
		return c.KeyChangeRate, c.KeyChangeBurst
	case restInvite:
		return c.InviteRate, c.InviteBurst
	case restServiceMemberAdd:
		return c.ServiceMemberAddRate, c.ServiceMemberAddBurst
	}
	return c.ServicePostRate, c.ServicePostBurst
}

// restLimiter holds the REST buckets. It has no goroutine: a bucket is created on a
// principal's first call and the table is swept of full buckets (equal to fresh
// ones) once it has doubled since the last sweep, so its size follows the active
// principals and the cost is amortised.
type restLimiter struct {
	cfg RESTLimits

	mu      sync.Mutex // guards buckets and sweep
	buckets map[restKey]*rate.Limiter
	sweep   int
}

type restKey struct {
	kind restKind
	user string
}

func newRESTLimiter(cfg RESTLimits) *restLimiter {
	return &restLimiter{cfg: cfg, buckets: map[restKey]*rate.Limiter{}, sweep: 1024}
}

// restCharge is one request's charges so far; cancel gives them back when a later
// bucket refuses the request.
type restCharge []reservation

// reservation is a charge and when it was made: a reservation is given back as of
// that instant (rate.Reservation.CancelAt ignores a cancel later than the time the
// reserved action was due, which for an immediate charge is when it was made).
type reservation struct {
	r  *rate.Reservation
	at time.Time
}

func (c restCharge) cancel() {
	for _, r := range c {
		r.r.CancelAt(r.at)
	}
}

// take charges n tokens of kind to user, adding to charge. Over the bucket it
// cancels everything in charge and returns a rate_limited error whose RetryAfter
// says when the same request would pass; a charge larger than the burst can never
// pass and is refused with too_large. n <= 0 or an unlimited bucket charges nothing.
func (l *restLimiter) take(charge *restCharge, kind restKind, user string, n int) error {
	r, burst := l.cfg.bucketOf(kind)
	if r <= 0 || n <= 0 {
		return nil
	}
	if n > burst {
		charge.cancel()
		return protocol.Errorf(protocol.CodeTooLarge, "%d at once is over this server's limit of %d (gateway.limits.%s-burst): split it", n, burst, kindName(kind))
	}
	now := time.Now()
	l.mu.Lock()
	k := restKey{kind, user}
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.sweep {
			l.sweepBuckets(now)
		}
		b = rate.NewLimiter(rate.Limit(r), burst)
		l.buckets[k] = b
	}
	res := b.ReserveN(now, n)
	l.mu.Unlock()
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		charge.cancel()
		e := rateLimited("too many %s from this user: retry in %s", kindWhat(kind), wait.Round(time.Millisecond))
		e.RetryAfter = wait
		return e
	}
	*charge = append(*charge, reservation{res, now})
	return nil
}

// sweepBuckets drops full buckets. l.mu is held.
func (l *restLimiter) sweepBuckets(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.buckets, k)
		}
	}
	l.sweep = max(1024, 2*len(l.buckets))
}

func kindName(k restKind) string {
	return [...]string{"chat-create", "member-add", "post", "service-post", "key-claim", "key-change", "invite", "service-member-add"}[k]
}

func kindWhat(k restKind) string {
	return [...]string{"chats created", "members added", "messages posted", "messages posted", "key claims", "key changes", "invitations sent", "members added"}[k]
}

// memberAddKind is the REST bucket member adds by id are charged to: service
// tokens, which build large groups, have a larger one.
func memberAddKind(id auth.Identity) restKind {
	if id.Service {
		return restServiceMemberAdd
	}
	return restMemberAdd
}
