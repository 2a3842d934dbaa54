package e2ee

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
)

// Identity is one device's private key material: its identity keys (X25519 and
// Ed25519), its signed pre-key and its unused one-time pre-keys. A device never
// shares it; another device of the same user has an Identity of its own.
type Identity struct {
	UserID, DeviceID string

	ik    *ecdh.PrivateKey
	sk    ed25519.PrivateKey
	spkID uint32
	spk   *ecdh.PrivateKey
	otks  map[uint32]*ecdh.PrivateKey
	next  uint32 // the next one-time key id
}

// NewIdentity makes fresh keys for a device of user.
func NewIdentity(user, device string) (*Identity, error) {
	ik, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	spk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{UserID: user, DeviceID: device, ik: ik, sk: sk, spkID: 1, spk: spk,
		otks: map[uint32]*ecdh.PrivateKey{}, next: 1}, nil
}

// Bundle is the device's public identity.
func (id *Identity) Bundle() Bundle {
	var b Bundle
	copy(b[:KeySize], id.ik.PublicKey().Bytes())
	copy(b[KeySize:], id.sk.Public().(ed25519.PublicKey))
	return b
}

// PreKey is a public pre-key as the directory holds it.
type PreKey struct {
	ID        uint32 `json:"id"`
	Key       string `json:"key"`
	Signature string `json:"signature,omitempty"`
}

// DeviceKeys is the body of PUT /api/v1/keys/devices/{deviceId}.
type DeviceKeys struct {
	IdentityKey  string   `json:"identityKey"`
	SignedPreKey PreKey   `json:"signedPreKey"`
	OneTimeKeys  []PreKey `json:"oneTimeKeys"`
}

// Publish returns the device's public keys with n new one-time keys (kept here
// until a box uses them).
func (id *Identity) Publish(n int) (DeviceKeys, error) {
	pub := id.spk.PublicKey().Bytes()
	otks, err := id.NewOneTimeKeys(n)
	if err != nil {
		return DeviceKeys{}, err
	}
	return DeviceKeys{IdentityKey: id.Bundle().String(),
		SignedPreKey: PreKey{ID: id.spkID, Key: b64.EncodeToString(pub), Signature: b64.EncodeToString(SignPreKey(id.sk, id.spkID, pub))},
		OneTimeKeys:  otks}, nil
}

// NewOneTimeKeys makes n one-time pre-keys and returns their public halves.
func (id *Identity) NewOneTimeKeys(n int) ([]PreKey, error) {
	out := make([]PreKey, 0, n)
	for range n {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		id.otks[id.next] = k
		out = append(out, PreKey{ID: id.next, Key: b64.EncodeToString(k.PublicKey().Bytes())})
		id.next++
	}
	return out, nil
}

// identityState is Identity's saved form.
type identityState struct {
	UserID   string            `json:"userId"`
	DeviceID string            `json:"deviceId"`
	IK       []byte            `json:"ik"`
	SK       []byte            `json:"sk"` // Ed25519 seed
	SPKID    uint32            `json:"spkId"`
	SPK      []byte            `json:"spk"`
	OTKs     map[uint32][]byte `json:"otks"`
	Next     uint32            `json:"next"`
}

// MarshalJSON saves the private keys: whoever reads the result can read this
// device's chats, so store it like a password (docs/e2ee.md, "Key storage").
func (id *Identity) MarshalJSON() ([]byte, error) {
	st := identityState{UserID: id.UserID, DeviceID: id.DeviceID, IK: id.ik.Bytes(), SK: id.sk.Seed(),
		SPKID: id.spkID, SPK: id.spk.Bytes(), OTKs: map[uint32][]byte{}, Next: id.next}
	for k, v := range id.otks {
		st.OTKs[k] = v.Bytes()
	}
	return json.Marshal(st)
}

// UnmarshalJSON loads what MarshalJSON saved.
func (id *Identity) UnmarshalJSON(b []byte) error {
	var st identityState
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	x := ecdh.X25519()
	ik, err := x.NewPrivateKey(st.IK)
	if err != nil {
		return fmt.Errorf("e2ee: identity key: %w", err)
	}
	spk, err := x.NewPrivateKey(st.SPK)
	if err != nil {
		return fmt.Errorf("e2ee: signed pre-key: %w", err)
	}
	if len(st.SK) != ed25519.SeedSize {
		return fmt.Errorf("e2ee: signing key: want %d bytes", ed25519.SeedSize)
	}
	*id = Identity{UserID: st.UserID, DeviceID: st.DeviceID, ik: ik, sk: ed25519.NewKeyFromSeed(st.SK),
		spkID: st.SPKID, spk: spk, otks: map[uint32]*ecdh.PrivateKey{}, next: st.Next}
	for k, v := range st.OTKs {
		if id.otks[k], err = x.NewPrivateKey(v); err != nil {
			return fmt.Errorf("e2ee: one-time key %d: %w", k, err)
		}
	}
	return nil
}
