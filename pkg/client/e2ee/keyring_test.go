package e2ee

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// dir is an in-memory key directory for keyring tests: what a Session would read
// from the server.
type dir struct {
	bundles map[string]map[string]Bundle
	devs    []RecipientDevice
}

func (d *dir) add(t *testing.T, k *Keyring) {
	id := k.Identity()
	if d.bundles[id.UserID] == nil {
		d.bundles[id.UserID] = map[string]Bundle{}
	}
	d.bundles[id.UserID][id.DeviceID] = id.Bundle()
	pub, err := id.Publish(1)
	require.NoError(t, err)
	r, err := recipientOf(id.UserID, DirectoryDevice{DeviceID: id.DeviceID, IdentityKey: pub.IdentityKey,
		SignedPreKey: pub.SignedPreKey, OneTimeKey: &pub.OneTimeKeys[0]})
	require.NoError(t, err)
	d.devs = append(d.devs, r)
}

func (d *dir) lookup(_ context.Context, user string) (map[string]Bundle, error) {
	return d.bundles[user], nil
}

// to returns the directory's devices other than k's, minus those of users in except.
// Like the server, it hands each one-time key out once.
func (d *dir) to(k *Keyring, except ...string) []RecipientDevice {
	var out []RecipientDevice
	for i := range d.devs {
		r := d.devs[i]
		skip := r.User == k.Identity().UserID && r.Device == k.Identity().DeviceID
		for _, e := range except {
			skip = skip || r.User == e || r.User+"/"+r.Device == e
		}
		if !skip {
			out = append(out, r)
			d.devs[i].Keys.OTK, d.devs[i].OTKID = nil, 0
		}
	}
	return out
}

func newKeyring(t *testing.T, user, device string) *Keyring {
	id, err := NewIdentity(user, device)
	require.NoError(t, err)
	return NewKeyring(id)
}

func TestKeyringGroupLifecycle(t *testing.T) {
	ctx := context.Background()
	d := &dir{bundles: map[string]map[string]Bundle{}}
	a1, a2 := newKeyring(t, "alice", "a1"), newKeyring(t, "alice", "a2")
	b1, c1 := newKeyring(t, "bob", "b1"), newKeyring(t, "carol", "c1")
	all := []*Keyring{a1, a2, b1, c1}
	for _, k := range all {
		d.add(t, k)
	}
	seq := uint64(0)
	// deliver hands the message to every keyring and returns what each made of it.
	deliver := func(sender *Keyring, id, content string, to ...*Keyring) {
		seq++
		for _, k := range to {
			_, err := k.Open(ctx, "g", sender.Identity().UserID, id, seq, content, d.lookup)
			require.NoError(t, err, "%s opens %s", k.Identity().DeviceID, id)
		}
	}
	text := func(k *Keyring, sender *Keyring, id, content string) string {
		o, err := k.Open(ctx, "g", sender.Identity().UserID, id, seq, content, d.lookup)
		require.NoError(t, err)
		return o.Payload.Text
	}

	// alice's first device shares its key with every other device, her own second one included.
	require.True(t, a1.NeedsRotation("g"))
	_, err := a1.Rotate("g")
	require.NoError(t, err)
	keys, err := a1.SealKeys("g", d.to(a1))
	require.NoError(t, err)
	deliver(a1, "k1", keys, all...)
	m1, err := a1.Encrypt("g", "m1", Payload{Type: "text", Text: "hello"})
	require.NoError(t, err)
	seq++
	for _, k := range all {
		require.Equal(t, "hello", text(k, a1, "m1", m1), k.Identity().DeviceID)
	}
	// The same ciphertext under another message ID is refused (bound to its ID), and a
	// tampered one does not open.
	_, err = b1.Open(ctx, "g", "alice", "m1-copy", seq, m1, d.lookup)
	require.ErrorIs(t, err, ErrSignature)
	var env Envelope
	require.NoError(t, json.Unmarshal([]byte(m1), &env))
	env.CT = b64.EncodeToString(append(mustB64(t, env.CT)[:4], make([]byte, 20)...))
	_, err = b1.Open(ctx, "g", "alice", "m1", seq, env.String(), d.lookup)
	require.ErrorIs(t, err, ErrSignature)
	// bob cannot pass a message off as alice's: his own key signs it.
	_, err = b1.Rotate("g")
	require.NoError(t, err)
	fromBob, err := b1.Encrypt("g", "m2", Payload{Type: "text", Text: "I am alice"})
	require.NoError(t, err)
	_, err = c1.Open(ctx, "g", "alice", "m2", seq, fromBob, d.lookup)
	require.ErrorIs(t, err, ErrNoKey, "no key of alice's device for bob's epoch")

	// carol leaves: alice rotates and shares with the others only.
	a1.MarkStale("g")
	require.True(t, a1.NeedsRotation("g"))
	_, err = a1.Encrypt("g", "m3", Payload{Type: "text", Text: "x"})
	require.Error(t, err, "a stale key does not encrypt")
	_, err = a1.Rotate("g")
	require.NoError(t, err)
	keys, err = a1.SealKeys("g", d.to(a1, "carol"))
	require.NoError(t, err)
	deliver(a1, "k2", keys, a2, b1, c1)
	m4, err := a1.Encrypt("g", "m4", Payload{Type: "text", Text: "carol is gone"})
	require.NoError(t, err)
	seq++
	require.Equal(t, "carol is gone", text(b1, a1, "m4", m4))
	require.Equal(t, "carol is gone", text(a2, a1, "m4", m4))
	_, err = c1.Open(ctx, "g", "alice", "m4", seq, m4, d.lookup)
	require.ErrorIs(t, err, ErrNoKey)
	// She still reads what was sent while she was in.
	require.Equal(t, "hello", text(c1, a1, "m1", m1))

	// alice's second device is revoked: messages it sends afterwards are refused.
	_, err = a2.Rotate("g")
	require.NoError(t, err)
	keys, err = a2.SealKeys("g", d.to(a2, "carol"))
	require.NoError(t, err)
	deliver(a2, "k3", keys, b1)
	before, err := a2.Encrypt("g", "m5", Payload{Type: "text", Text: "before"})
	require.NoError(t, err)
	seq++
	require.Equal(t, "before", text(b1, a2, "m5", before))
	b1.Revoke("alice", "a2", seq)
	after, err := a2.Encrypt("g", "m6", Payload{Type: "text", Text: "after"})
	require.NoError(t, err)
	seq++
	_, err = b1.Open(ctx, "g", "alice", "m6", seq, after, d.lookup)
	require.ErrorIs(t, err, ErrRevoked)
}

func TestKeyringRefusesUnconfirmedIdentity(t *testing.T) {
	ctx := context.Background()
	d := &dir{bundles: map[string]map[string]Bundle{}}
	a, b := newKeyring(t, "alice", "a1"), newKeyring(t, "bob", "b1")
	d.add(t, a)
	d.add(t, b)
	// A one-time key serves once: the same box cannot be opened a second time by a
	// fresh keyring of the same device (the private key is gone).
	_, err := a.Rotate("g")
	require.NoError(t, err)
	keys, err := a.SealKeys("g", d.to(a))
	require.NoError(t, err)
	_, err = b.Open(ctx, "g", "alice", "k1", 1, keys, d.lookup)
	require.NoError(t, err)
	again := NewKeyring(b.Identity())
	_, err = again.Open(ctx, "g", "alice", "k1", 1, keys, d.lookup)
	require.ErrorIs(t, err, ErrNoKey)
	// mallory makes keys under alice's name and device; the directory has alice's real ones.
	m := newKeyring(t, "alice", "a1")
	_, err = m.Rotate("g")
	require.NoError(t, err)
	keys, err = m.SealKeys("g", d.to(m))
	require.NoError(t, err)
	_, err = b.Open(ctx, "g", "alice", "k2", 2, keys, d.lookup)
	require.ErrorIs(t, err, ErrUntrusted)
	// A signed pre-key whose signature does not verify is refused before sealing.
	bad := d.to(a)
	bad[0].SPKSig = append([]byte{}, bad[0].SPKSig...)
	bad[0].SPKSig[0] ^= 1
	_, err = a.SealKeys("g", bad)
	require.ErrorIs(t, err, ErrSignature)
}

func TestIdentityRoundTrip(t *testing.T) {
	id, err := NewIdentity("alice", "a1")
	require.NoError(t, err)
	_, err = id.Publish(3)
	require.NoError(t, err)
	b, err := json.Marshal(id)
	require.NoError(t, err)
	var back Identity
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, id.Bundle(), back.Bundle())
	require.Len(t, back.otks, 3)
	require.Equal(t, fmt.Sprint(id.next), fmt.Sprint(back.next))
}

func TestKeyringSavedAndLoaded(t *testing.T) {
	ctx := context.Background()
	d := &dir{bundles: map[string]map[string]Bundle{}}
	a, b := newKeyring(t, "alice", "a1"), newKeyring(t, "bob", "b1")
	d.add(t, a)
	d.add(t, b)
	_, err := a.Rotate("g")
	require.NoError(t, err)
	keys, err := a.SealKeys("g", d.to(a))
	require.NoError(t, err)
	_, err = b.Open(ctx, "g", "alice", "k1", 1, keys, d.lookup)
	require.NoError(t, err)
	m1, err := a.Encrypt("g", "m1", Payload{Type: "text", Text: "before the restart"})
	require.NoError(t, err)

	// Both restart from what they saved: bob still reads, alice goes on with the same
	// epoch and a counter that does not repeat.
	saved, err := json.Marshal(b)
	require.NoError(t, err)
	b2, err := UnmarshalKeyring(saved)
	require.NoError(t, err)
	o, err := b2.Open(ctx, "g", "alice", "m1", 2, m1, nil)
	require.NoError(t, err)
	require.Equal(t, "before the restart", o.Payload.Text)
	saved, err = json.Marshal(a)
	require.NoError(t, err)
	a2, err := UnmarshalKeyring(saved)
	require.NoError(t, err)
	require.False(t, a2.NeedsRotation("g"))
	m2, err := a2.Encrypt("g", "m2", Payload{Type: "text", Text: "after"})
	require.NoError(t, err)
	env, err := ParseEnvelope(m2)
	require.NoError(t, err)
	require.Equal(t, uint32(2), env.Counter)
	o, err = b2.Open(ctx, "g", "alice", "m2", 3, m2, nil)
	require.NoError(t, err)
	require.Equal(t, "after", o.Payload.Text)
}
