package e2ee

import (
	"encoding/json"
	"fmt"
)

// keyringState is a Keyring's saved form (its Identity included).
type keyringState struct {
	Identity *Identity      `json:"identity"`
	Own      []ownState     `json:"own"`
	Recv     []recvState    `json:"recv"`
	Peers    []peerState    `json:"peers"`
	Revoked  []revokedState `json:"revoked"`
}

type ownState struct {
	Chat    string `json:"chat"`
	Epoch   uint32 `json:"epoch"`
	Chain   []byte `json:"chain"`
	Counter uint32 `json:"counter"`
	Stale   bool   `json:"stale"`
}

type recvState struct {
	Chat, User, Device string
	Epoch              uint32
	Chain              []byte
	Bundle             []byte
}

type peerState struct {
	User, Device string
	Bundle       []byte
}

type revokedState struct {
	User, Device string
	Seq          uint64
}

// MarshalJSON saves the whole keyring: the device's private keys and every sender
// key it holds. Whoever reads it can read this device's chats: store it like a
// password (docs/e2ee.md, "Key storage"). A process that saves it when it stops and
// loads it (UnmarshalKeyring) when it starts stays the same device and keeps reading
// the history it had keys for.
func (k *Keyring) MarshalJSON() ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := keyringState{Identity: k.id}
	for c, s := range k.own {
		st.Own = append(st.Own, ownState{c, s.epoch, s.chain, s.counter, s.stale})
	}
	for rk, r := range k.recv {
		st.Recv = append(st.Recv, recvState{rk.chat, rk.user, rk.device, rk.epoch, r.chain, r.bundle[:]})
	}
	for p, b := range k.peers {
		st.Peers = append(st.Peers, peerState{p.user, p.device, b[:]})
	}
	for p, seq := range k.revoked {
		st.Revoked = append(st.Revoked, revokedState{p.user, p.device, seq})
	}
	return json.Marshal(st)
}

// UnmarshalKeyring loads what Keyring.MarshalJSON saved.
func UnmarshalKeyring(b []byte) (*Keyring, error) {
	var st keyringState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("e2ee: keyring: %w", err)
	}
	if st.Identity == nil {
		return nil, fmt.Errorf("e2ee: keyring: no identity")
	}
	k := NewKeyring(st.Identity)
	bundle := func(raw []byte) (Bundle, error) {
		var b Bundle
		if len(raw) != BundleSize {
			return b, fmt.Errorf("e2ee: keyring: bundle of %d bytes", len(raw))
		}
		copy(b[:], raw)
		return b, nil
	}
	for _, o := range st.Own {
		if len(o.Chain) != KeySize {
			return nil, fmt.Errorf("e2ee: keyring: chain key of %d bytes", len(o.Chain))
		}
		k.own[o.Chat] = &senderKey{epoch: o.Epoch, chain: o.Chain, counter: o.Counter, stale: o.Stale}
	}
	for _, r := range st.Recv {
		b, err := bundle(r.Bundle)
		if err != nil {
			return nil, err
		}
		if len(r.Chain) != KeySize {
			return nil, fmt.Errorf("e2ee: keyring: chain key of %d bytes", len(r.Chain))
		}
		k.recv[recvKey{r.Chat, r.User, r.Device, r.Epoch}] = received{r.Chain, b}
	}
	for _, p := range st.Peers {
		b, err := bundle(p.Bundle)
		if err != nil {
			return nil, err
		}
		k.peers[peerKey{p.User, p.Device}] = b
	}
	for _, r := range st.Revoked {
		k.revoked[peerKey{r.User, r.Device}] = r.Seq
	}
	return k, nil
}
