// Package presencekv is the presence contract between gateways, the presence role and
// the notifier: the layout of the JetStream KV bucket "presence", the values stored in
// it, and the reports gateways send on subjects.Heartbeat(). docs/presence.md
// describes the protocol as clients see it.
//
// Bucket layout (keys; every ID passed ids.Valid, so each is one key token):
//
//	gw.<gateway>        a gateway's lease: rewritten on each heartbeat with a TTL; when
//	                    heartbeats stop it expires and the server leaves a MaxAge
//	                    marker, which tells the presence role the gateway is gone
//	c.<gateway>.<user>  devices of user on gateway, with the gateway's report seq
//	                    (ConnValue); n = 0 entries are tombstones with a TTL
//	u.<user>            the user's aggregate state (User): what others see
//	p.<user>            a grace timer: created with a TTL when a user's last device
//	                    goes; its expiry marker turns the user offline
package presencekv

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/natter-chat/natter/pkg/protocol"
)

// Bucket is the name of the presence KV bucket.
const Bucket = "presence"

// QueueGroup is the queue group presence instances share on subjects.Heartbeat(), so
// each report is handled by one of them.
const QueueGroup = "presence"

// MarkerTTL is how long the bucket keeps expiry and delete markers: the longest a
// presence outage may last and still have every expired lease and grace timer
// processed when it comes back.
const MarkerTTL = time.Hour

// Statuses as others see them (View.Status) and as a user may choose them (Set).
const (
	StatusOnline    = "online"
	StatusAway      = "away"
	StatusOffline   = "offline"
	StatusInvisible = "invisible" // chosen only: others see offline
)

// LeaseKey is the key of gateway gw's lease.
func LeaseKey(gw string) string { return "gw." + gw }

// ConnKey is the key of uid's devices on gateway gw.
func ConnKey(gw, uid string) string { return "c." + gw + "." + uid }

// ConnFilter matches the ConnKey of every user of gateway gw.
func ConnFilter(gw string) string { return "c." + gw + ".*" }

// UserKey is the key of uid's aggregate state.
func UserKey(uid string) string { return "u." + uid }

// GraceKey is the key of uid's grace timer.
func GraceKey(uid string) string { return "p." + uid }

// Subject is the JetStream subject key is stored under in the bucket's stream.
func Subject(key string) string { return "$KV." + Bucket + "." + key }

// StreamName is the name of the bucket's stream.
const StreamName = "KV_" + Bucket

// ConnValue is the value of c.<gateway>.<user>.
type ConnValue struct {
	N    int    `json:"n"`              // devices of the user on the gateway
	Seq  uint64 `json:"seq"`            // the gateway's report seq it came from; older reports are ignored
	At   int64  `json:"at"`             // ms when it was written
	Gone bool   `json:"gone,omitempty"` // set by the presence role when the gateway went away
}

// GatewayDevices is one gateway's share of a User: its device count and the revision
// of the c.<gateway>.<user> entry it was taken from, so updates applied out of order
// never go backwards. N = 0 entries are kept for a while as tombstones.
type GatewayDevices struct {
	N   int    `json:"n"`
	Rev uint64 `json:"rev"`
	At  int64  `json:"at"` // ms
}

// User is the value of u.<user>: the user's devices per gateway, the status they chose,
// and what others were last shown. Only the presence role writes it (with CAS).
type User struct {
	Gateways map[string]GatewayDevices `json:"gw,omitempty"`
	// Set is the status the user chose: "" (online), StatusAway or StatusInvisible.
	Set string `json:"set,omitempty"`
	// Shown is the status last published to others ("" means never online: offline),
	// ShownDevices the device count published with it.
	Shown        string `json:"shown,omitempty"`
	ShownDevices int    `json:"shownDevices,omitempty"`
	// LastSeen is ms when the user was last visibly online; 0 if never.
	LastSeen int64 `json:"lastSeen,omitempty"`
	// Pending is ms since the last device went, while the grace period runs (the
	// user is still shown online); 0 otherwise.
	Pending int64 `json:"pending,omitempty"`
}

// Devices returns how many devices the user has connected, over all gateways.
func (u *User) Devices() int {
	n := 0
	for _, g := range u.Gateways {
		n += g.N
	}
	return n
}

// Visible reports whether others currently see the user as online or away.
func (u *User) Visible() bool { return u.Shown == StatusOnline || u.Shown == StatusAway }

// View is a user's presence as others see it.
type View struct {
	UserID string `json:"userId"`
	// Status is online, away or offline (invisible users are shown offline).
	Status string `json:"status"`
	// LastSeen is ms since the epoch when an offline user was last seen online; 0
	// (omitted) while online or if never seen.
	LastSeen int64 `json:"lastSeen,omitempty"`
	// Devices is the number of connected devices of an online or away user.
	Devices int `json:"devices"`
}

// ViewOf returns what others see of uid whose entry is u (nil: never seen).
func ViewOf(uid string, u *User) View {
	v := View{UserID: uid, Status: StatusOffline}
	if u == nil {
		return v
	}
	if u.Visible() {
		v.Status, v.Devices = u.Shown, u.ShownDevices
		return v
	}
	v.LastSeen = u.LastSeen
	return v
}

// Frame returns the presence_update frame carrying v.
func (v View) Frame(id string) *protocol.Frame {
	return &protocol.Frame{Type: protocol.FramePresenceUpdate, ID: id, UserID: v.UserID,
		Status: v.Status, LastSeen: v.LastSeen, Devices: v.Devices}
}

// Report kinds a gateway sends on subjects.Heartbeat() as a request; the presence
// role answers each with a Reply.
const (
	// KindHeartbeat renews the gateway's lease. Reply.Resync asks the gateway to
	// report all its users again (its lease had expired or never existed).
	KindHeartbeat = "hb"
	// KindDevices reports the current device counts of the named users on the
	// gateway (0: none left).
	KindDevices = "devices"
	// KindSweep, after a full resync, clears the gateway's users whose last report
	// is older than Before: they left while their reports were lost.
	KindSweep = "sweep"
	// KindGone: the gateway is stopping cleanly; its users go offline after the
	// grace period unless they reconnect elsewhere.
	KindGone = "gone"
	// KindSet sets the status User chose (Status: online, away, invisible).
	KindSet = "set"
)

// Report is one message from a gateway to the presence role.
type Report struct {
	Kind    string `json:"kind"`
	Gateway string `json:"gw,omitempty"`
	// IntervalMs is how often the gateway sends heartbeats (KindHeartbeat).
	IntervalMs int64 `json:"intervalMs,omitempty"`
	// Users are the device counts (KindDevices), at most MaxReportUsers.
	Users map[string]Devices `json:"users,omitempty"`
	// Before is the first seq of a full resync (KindSweep).
	Before uint64 `json:"before,omitempty"`
	// User and Status for KindSet.
	User   string `json:"user,omitempty"`
	Status string `json:"status,omitempty"`
}

// Devices is one user's device count on the reporting gateway, stamped with the
// gateway's report seq (increasing per gateway): a count with a lower seq than the
// stored one is stale and ignored.
type Devices struct {
	N   int    `json:"n"`
	Seq uint64 `json:"seq"`
}

// MaxReportUsers caps the users of one KindDevices report.
const MaxReportUsers = 256

// Reply answers a Report.
type Reply struct {
	Resync bool   `json:"resync,omitempty"`
	Error  string `json:"error,omitempty"`
	// User is the user's entry after KindSet.
	User *User `json:"user,omitempty"`
}

// Ensure creates the presence bucket, or updates it to this configuration. Per-key
// TTLs and expiry markers are on (LimitMarkerTTL), history is 1. A bucket that
// already has this configuration is left alone: the presence role and the notifier
// both call Ensure at start, and an update while the other creates a watch on the
// bucket is a needless configuration change under a live consumer.
func Ensure(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	if kv, err := js.KeyValue(ctx, Bucket); err == nil {
		if st, err := kv.Status(ctx); err == nil && st.History() == 1 &&
			st.LimitMarkerTTL() == MarkerTTL && st.Config().Replicas == max(replicas, 1) {
			return kv, nil
		}
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         Bucket,
		Description:    "Natter presence: gateway leases, devices per gateway, user state",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       max(replicas, 1),
		LimitMarkerTTL: MarkerTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("presence bucket: %w", err)
	}
	return kv, nil
}
