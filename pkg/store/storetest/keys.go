package storetest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/natter-chat/natter/pkg/protocol"
	"github.com/natter-chat/natter/pkg/store"
	"github.com/stretchr/testify/require"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func otks(from, n int) []store.PreKey {
	out := make([]store.PreKey, n)
	for i := range out {
		out[i] = store.PreKey{ID: uint32(from + i), Key: b64(fmt.Sprintf("otk-%d", from+i))}
	}
	return out
}

func devKeys(user, device, identity string) store.DeviceKeys {
	return store.DeviceKeys{UserID: user, DeviceID: device, IdentityKey: b64(identity),
		SignedPreKey: store.PreKey{ID: 1, Key: b64("spk-" + identity), Signature: b64("sig-" + identity)}}
}

// keyDirectory is the key directory's contract: publication, key changes,
// announcement state, claims and revocation.
func keyDirectory(t *testing.T, s store.Store) {
	ctx := context.Background()
	k, n, err := s.PutDeviceKeys(ctx, devKeys("alice", "phone", "id-1"), otks(1, 3))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	require.False(t, k.Announced, "a new device is a key change to announce")
	require.NoError(t, s.MarkKeysAnnounced(ctx, "alice", "phone", b64("id-1"), false))

	// The same identity again (a new signed pre-key, more one-time keys) is no change.
	again := devKeys("alice", "phone", "id-1")
	again.SignedPreKey = store.PreKey{ID: 2, Key: b64("spk-2"), Signature: b64("sig-2")}
	k, n, err = s.PutDeviceKeys(ctx, again, otks(3, 2)) // id 3 replaces, 4 is new
	require.NoError(t, err)
	require.Equal(t, 4, n)
	require.True(t, k.Announced)
	n, err = s.AddOneTimeKeys(ctx, "alice", "phone", otks(10, 2))
	require.NoError(t, err)
	require.Equal(t, 6, n)

	// Claims hand out the lowest key of each device, once.
	_, _, err = s.PutDeviceKeys(ctx, devKeys("alice", "laptop", "id-L"), nil)
	require.NoError(t, err)
	bs, err := s.ClaimKeys(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, bs, 2)
	require.Equal(t, "laptop", bs[0].DeviceID)
	require.Nil(t, bs[0].OneTimeKey, "no supply: the bundle has no one-time key")
	require.Equal(t, "phone", bs[1].DeviceID)
	require.Equal(t, b64("id-1"), bs[1].IdentityKey)
	require.Equal(t, store.PreKey{ID: 2, Key: b64("spk-2"), Signature: b64("sig-2")}, bs[1].SignedPreKey)
	require.Equal(t, &store.PreKey{ID: 1, Key: b64("otk-1")}, bs[1].OneTimeKey)
	var got []uint32
	for range 6 {
		bs, err := s.ClaimKeys(ctx, "alice")
		require.NoError(t, err)
		if o := bs[1].OneTimeKey; o != nil {
			got = append(got, o.ID)
		}
	}
	require.Equal(t, []uint32{2, 3, 4, 10, 11}, got)
	bs, err = s.ClaimKeys(ctx, "nobody")
	require.NoError(t, err)
	require.Empty(t, bs)

	// A changed identity is a key change: the old supply goes with the old identity.
	n, err = s.AddOneTimeKeys(ctx, "alice", "phone", otks(20, 2))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	k, n, err = s.PutDeviceKeys(ctx, devKeys("alice", "phone", "id-2"), otks(30, 1))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.False(t, k.Announced)
	require.NoError(t, s.MarkKeysAnnounced(ctx, "alice", "phone", b64("id-1"), false), "a stale announcement changes nothing")
	ks, err := s.DeviceKeys(ctx, "alice")
	require.NoError(t, err)
	require.False(t, ks[1].Announced)
	require.NoError(t, s.MarkKeysAnnounced(ctx, "alice", "phone", b64("id-2"), false))
	ks, err = s.DeviceKeys(ctx, "alice")
	require.NoError(t, err)
	require.True(t, ks[1].Announced)

	// Revocation: keys and supply gone, the row kept until announced, then removed.
	old, err := s.RevokeDeviceKeys(ctx, "alice", "phone")
	require.NoError(t, err)
	require.Equal(t, b64("id-2"), old.IdentityKey)
	bs, err = s.ClaimKeys(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, bs, 1, "a revoked device is never claimed")
	_, err = s.AddOneTimeKeys(ctx, "alice", "phone", otks(40, 1))
	require.ErrorIs(t, err, store.ErrNotFound)
	ks, err = s.DeviceKeys(ctx, "alice")
	require.NoError(t, err)
	require.True(t, ks[1].Revoked)
	require.False(t, ks[1].Announced)
	require.Empty(t, ks[1].IdentityKey)
	old, err = s.RevokeDeviceKeys(ctx, "alice", "phone")
	require.NoError(t, err, "revoking again (an announcement to retry) is allowed")
	require.True(t, old.Revoked)
	require.NoError(t, s.MarkKeysAnnounced(ctx, "alice", "phone", "", true))
	_, err = s.RevokeDeviceKeys(ctx, "alice", "phone")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.RevokeDeviceKeys(ctx, "alice", "never")
	require.ErrorIs(t, err, store.ErrNotFound)
	// The device may publish again: a new device, with no old supply.
	k, n, err = s.PutDeviceKeys(ctx, devKeys("alice", "phone", "id-2"), nil)
	require.NoError(t, err)
	require.Zero(t, n)
	require.False(t, k.Announced)
	_, err = s.AddOneTimeKeys(ctx, "alice", "ghost", otks(1, 1))
	require.ErrorIs(t, err, store.ErrNotFound)

	// Limits and validation; refused input stores nothing.
	for i := range store.MaxKeyDevicesPerUser {
		_, _, err := s.PutDeviceKeys(ctx, devKeys("erin", fmt.Sprintf("d%d", i), "e"), nil)
		require.NoError(t, err)
	}
	_, _, err = s.PutDeviceKeys(ctx, devKeys("erin", "one-more", "e"), nil)
	require.ErrorIs(t, err, store.ErrTooManyKeyDevices)
	_, _, err = s.PutDeviceKeys(ctx, devKeys("erin", "d0", "e2"), nil)
	require.NoError(t, err, "replacing a device's keys is not a new device")

	_, err = s.AddOneTimeKeys(ctx, "erin", "d1", otks(0, store.MaxOneTimeKeys+1))
	require.ErrorIs(t, err, store.ErrTooManyOneTimeKeys)
	n, err = s.AddOneTimeKeys(ctx, "erin", "d1", otks(0, store.MaxOneTimeKeys-1))
	require.NoError(t, err)
	require.Equal(t, store.MaxOneTimeKeys-1, n)
	_, err = s.AddOneTimeKeys(ctx, "erin", "d1", otks(store.MaxOneTimeKeys, 2))
	require.ErrorIs(t, err, store.ErrTooManyOneTimeKeys, "the supply is capped, not only one upload")
	n, err = s.AddOneTimeKeys(ctx, "erin", "d1", otks(0, 5))
	require.NoError(t, err, "replacing keys does not grow the supply")
	require.Equal(t, store.MaxOneTimeKeys-1, n)
	_, _, err = s.PutDeviceKeys(ctx, devKeys("erin", "d1", "e"), otks(store.MaxOneTimeKeys, 2))
	require.ErrorIs(t, err, store.ErrTooManyOneTimeKeys)

	big := base64.StdEncoding.EncodeToString(make([]byte, store.MaxKeyBytes+1))
	bad := func(mut func(*store.DeviceKeys)) store.DeviceKeys {
		k := devKeys("frank", "f1", "f")
		mut(&k)
		return k
	}
	for name, k := range map[string]store.DeviceKeys{
		"no user":       bad(func(k *store.DeviceKeys) { k.UserID = "" }),
		"bad device":    bad(func(k *store.DeviceKeys) { k.DeviceID = "a.b" }),
		"no identity":   bad(func(k *store.DeviceKeys) { k.IdentityKey = "" }),
		"bad base64":    bad(func(k *store.DeviceKeys) { k.IdentityKey = "not base64!" }),
		"url alphabet":  bad(func(k *store.DeviceKeys) { k.IdentityKey = "-_-_" }),
		"huge identity": bad(func(k *store.DeviceKeys) { k.IdentityKey = big }),
		"no signature":  bad(func(k *store.DeviceKeys) { k.SignedPreKey.Signature = "" }),
		"no pre-key":    bad(func(k *store.DeviceKeys) { k.SignedPreKey.Key = "" }),
	} {
		_, _, err := s.PutDeviceKeys(ctx, k, nil)
		require.ErrorIs(t, err, store.ErrBadKeys, name)
	}
	for name, keys := range map[string][]store.PreKey{
		"duplicate id": {{ID: 1, Key: b64("a")}, {ID: 1, Key: b64("b")}},
		"bad base64":   {{ID: 1, Key: "%%%"}},
		"empty key":    {{ID: 1, Key: ""}},
		"huge key":     {{ID: 1, Key: big}},
		"signed":       {{ID: 1, Key: b64("a"), Signature: b64("s")}},
	} {
		_, _, err := s.PutDeviceKeys(ctx, devKeys("frank", "f1", "f"), keys)
		require.ErrorIs(t, err, store.ErrBadKeys, name)
		_, err = s.AddOneTimeKeys(ctx, "alice", "laptop", keys)
		require.ErrorIs(t, err, store.ErrBadKeys, name)
	}
	ks, err = s.DeviceKeys(ctx, "frank")
	require.NoError(t, err)
	require.Empty(t, ks, "refused input stores nothing")
	_, _, err = s.PutDeviceKeys(ctx, store.DeviceKeys{UserID: "frank", DeviceID: "raw", IdentityKey: strings.TrimRight(b64("x"), "="),
		SignedPreKey: store.PreKey{Key: b64("k"), Signature: b64("s")}}, nil)
	require.NoError(t, err, "unpadded standard base64 is accepted")
}

// concurrentClaims: however many claims race, each one-time key is handed out once
// and every key is handed out while the supply lasts.
func concurrentClaims(t *testing.T, s store.Store) {
	ctx := context.Background()
	const keys, claimers, rounds = 40, 8, 7 // 56 claims for 40 keys
	_, _, err := s.PutDeviceKeys(ctx, devKeys("bob", "b1", "id"), otks(1, keys))
	require.NoError(t, err)
	var mu sync.Mutex
	seen := map[uint32]int{}
	empty := 0
	var wg sync.WaitGroup
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				bs, err := s.ClaimKeys(ctx, "bob")
				if !assertNoErr(t, err) || len(bs) != 1 {
					return
				}
				mu.Lock()
				if o := bs[0].OneTimeKey; o != nil {
					seen[o.ID]++
				} else {
					empty++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, keys, "every key was handed out")
	for id, n := range seen {
		require.Equal(t, 1, n, "key %d handed out %d times", id, n)
	}
	require.Equal(t, claimers*rounds-keys, empty)
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("claim: %v", err)
		return false
	}
	return true
}

// encryptedChats: the flag is stored at creation and shown wherever the chat is;
// ciphertext is never found by search (nor its edits), and unread counts count it.
func encryptedChats(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	at := base.Add(time.Hour)
	c, created, err := s.CreateChat(ctx, store.Chat{ID: "e1", Kind: store.KindGroup, Name: "secret", CreatedBy: "alice",
		CreatedAt: at, Encrypted: true}, []store.Member{{ChatID: "e1", UserID: "alice", Role: store.RoleAdmin, JoinedAt: at},
		{ChatID: "e1", UserID: "bob", Role: store.RoleMember, JoinedAt: at}})
	require.NoError(t, err)
	require.True(t, created)
	require.True(t, c.Encrypted)
	again, created, err := s.CreateChat(ctx, store.Chat{ID: "e1", Kind: store.KindGroup, Name: "secret", CreatedBy: "alice",
		CreatedAt: at}, nil)
	require.NoError(t, err)
	require.False(t, created)
	require.True(t, again.Encrypted, "an existing chat keeps its flag")
	got, err := s.GetChat(ctx, "e1")
	require.NoError(t, err)
	require.True(t, got.Encrypted)
	group(t, s, "plain", "alice", "bob")
	got, err = s.GetChat(ctx, "plain")
	require.NoError(t, err)
	require.False(t, got.Encrypted)
	require.NoError(t, s.AddMember(ctx, store.Member{ChatID: "e1", UserID: "carol", Role: store.RoleMember, JoinedAt: at}))

	ct := func(seq uint64, sender, content string) protocol.Message {
		m := msg("e1", seq, sender, at.Add(time.Duration(seq)*time.Second))
		m.MessageType, m.Content = protocol.TypeEncrypted, content
		return m
	}
	edit := ct(3, "alice", "zebra quartz edited ciphertext")
	edit.MessageType, edit.RefID = protocol.TypeEdit, "m1"
	plain := msg("plain", 1, "alice", at)
	plain.Content = "zebra quartz in the clear"
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{ct(1, "alice", "zebra quartz ciphertext"), ct(2, "alice", "zebra other"), plain}))
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{edit}))
	// An edit stored before its target (racing persisters) indexes nothing either.
	late := ct(5, "alice", "zebra late")
	lateEdit := ct(6, "alice", "zebra quartz late edit")
	lateEdit.MessageType, lateEdit.RefID = protocol.TypeEdit, "m5"
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{lateEdit}))
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{late}))

	for _, who := range []string{"alice", "bob", "carol"} {
		for _, q := range []store.SearchQuery{{Text: "zebra"}, {Text: "quartz"}, {Text: "zebra", ChatID: "e1"}, {Text: "edited"}, {Text: "ciphertext"}} {
			found, err := searcher(t, s).Search(ctx, who, q)
			require.NoError(t, err)
			for _, m := range found {
				require.NotEqual(t, "e1", m.ChatID, "%s searching %q found ciphertext %+v", who, q.Text, m)
			}
		}
	}
	found, err := searcher(t, s).Search(ctx, "bob", store.SearchQuery{Text: "zebra"})
	require.NoError(t, err)
	require.Len(t, found, 1, "the plaintext chat is still searched")

	hist, err := s.History(ctx, "e1", store.HistoryQuery{Dir: store.Forward})
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3, 5, 6}, seqs(hist))
	require.Equal(t, "zebra quartz edited ciphertext", hist[0].Content, "edits apply to ciphertext as to text")
	require.True(t, hist[0].Edited)
	list, err := s.UserChats(ctx, "bob", 0, 0)
	require.NoError(t, err)
	for _, cs := range list {
		require.Equal(t, cs.ID == "e1", cs.Encrypted, cs.ID)
		if cs.ID == "e1" {
			require.EqualValues(t, 3, cs.Unread, "ciphertext messages count as unread")
		}
	}
	list, err = s.UserChats(ctx, "carol", 0, 0)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.True(t, list[0].Encrypted, "a member added later sees the flag")
}

// keyEventsAreNotRead: a key event is sequenced in a user's name, but unlike their
// own messages it does not mark the chat read for them.
func keyEventsAreNotRead(t *testing.T, s store.Store, group groupFn) {
	ctx := context.Background()
	group(t, s, "k1", "alice", "bob")
	meta, err := json.Marshal(protocol.SystemEvent{Event: protocol.EventDeviceKeysChanged, UserID: "bob", DeviceID: "phone"})
	require.NoError(t, err)
	ev := msg("k1", 2, "bob", base.Add(time.Minute))
	ev.MessageType, ev.Content, ev.Meta = protocol.TypeSystem, "", meta
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("k1", 1, "alice", base), ev}))
	rs, err := s.GetReadState(ctx, "k1", "bob")
	require.NoError(t, err)
	require.Zero(t, rs.Read, "bob's key event did not read alice's message for him")
	list, err := s.UserChats(ctx, "bob", 0, 0)
	require.NoError(t, err)
	require.EqualValues(t, 1, list[0].Unread)
	require.NoError(t, s.AppendMessages(ctx, []protocol.Message{msg("k1", 3, "bob", base.Add(2*time.Minute))}))
	rs, err = s.GetReadState(ctx, "k1", "bob")
	require.NoError(t, err)
	require.EqualValues(t, 3, rs.Read, "his own message still does")
}
