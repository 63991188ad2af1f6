package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
)

// KeySize is the size of a cluster key in bytes (docs/protocol.md §9).
const KeySize = 32

// ParseKey decodes a key file: 64 hex digits, surrounding white space
// (the newline of `openssl rand -hex 32 > cluster.key`) ignored. Its
// errors never quote the input: it may be a key.
func ParseKey(text []byte) ([]byte, error) {
	s := strings.TrimSpace(string(text))
	if len(s) != 2*KeySize {
		return nil, fmt.Errorf("bad key: %d characters, want %d hex digits (make one with: openssl rand -hex 32)", len(s), 2*KeySize)
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("bad key: not hex digits (make one with: openssl rand -hex 32)")
	}
	return k, nil
}

// Fingerprint names a key without revealing it: the first 8 hex digits of
// the SHA-256 of the key's 32 bytes (docs/protocol.md §9).
func Fingerprint(key []byte) string {
	s := sha256.Sum256(key)
	return hex.EncodeToString(s[:4])
}

// keyring holds the keys a node accepts; primary signs what it sends
// (docs/protocol.md §9.3). It is not safe for concurrent use: the node
// guards it with its lock.
type keyring struct {
	keys    []ringKey
	primary int // index in keys; meaningless when keys is empty
}

type ringKey struct {
	fp  string
	key []byte
	s   *signer
}

// add adds key if it is new; the first key added becomes primary.
func (r *keyring) add(key []byte) (fp string, err error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("bad key: %d bytes, want %d", len(key), KeySize)
	}
	fp = Fingerprint(key)
	if r.find(fp) >= 0 {
		return fp, nil
	}
	if len(r.keys) >= maxKeys {
		return "", fmt.Errorf("keyring full: %d keys; remove one first", maxKeys)
	}
	r.keys = append(r.keys, ringKey{fp, slices.Clone(key), newSigner(key)})
	return fp, nil
}

// maxKeys bounds the keyring: each key costs an HMAC check only when a
// message names it, but the ring is listed in ctl.
const maxKeys = 8

func (r *keyring) find(fp string) int {
	return slices.IndexFunc(r.keys, func(k ringKey) bool { return k.fp == fp })
}

// lookup returns the signer of the key with fingerprint fp.
func (r *keyring) lookup(fp string) (*signer, bool) {
	if i := r.find(fp); i >= 0 {
		return r.keys[i].s, true
	}
	return nil, false
}

// use makes the key with fingerprint fp primary.
func (r *keyring) use(fp string) error {
	i := r.find(fp)
	if i < 0 {
		return fmt.Errorf("no key %q in the keyring", clip(fp))
	}
	r.primary = i
	return nil
}

// remove drops the key with fingerprint fp; the primary key cannot be
// removed while others remain (make another primary first).
func (r *keyring) remove(fp string) error {
	i := r.find(fp)
	if i < 0 {
		return fmt.Errorf("no key %q in the keyring", clip(fp))
	}
	if i == r.primary && len(r.keys) > 1 {
		return fmt.Errorf("key %s is primary: make another key primary first", fp)
	}
	clear(r.keys[i].key)
	r.keys = slices.Delete(r.keys, i, i+1)
	switch {
	case len(r.keys) == 0:
		r.primary = 0
	case r.primary > i:
		r.primary--
	}
	return nil
}

// signer returns the primary key's signer; ok is false when the ring is
// empty.
func (r *keyring) signer() (s *signer, ok bool) {
	if len(r.keys) == 0 {
		return nil, false
	}
	return r.keys[r.primary].s, true
}

// fingerprints lists the keys, primary first.
func (r *keyring) fingerprints() []string {
	var l []string
	for i, k := range r.keys {
		if i == r.primary {
			l = append([]string{k.fp}, l...)
		} else {
			l = append(l, k.fp)
		}
	}
	return l
}

// tagOf is the tag of a keyed message: the first TagSize bytes of
// HMAC-SHA256(key, signed), as lowercase hex (docs/protocol.md §9.1).
func tagOf(key, signed []byte) [2 * TagSize]byte {
	return newSigner(key).tagOf(signed)
}

// signer holds one key's HMAC state and a buffer, reused from message to
// message so that checking a datagram allocates nothing. Not safe for
// concurrent use.
type signer struct {
	fp  string
	mac hash.Hash
	buf []byte
}

func newSigner(key []byte) *signer {
	return &signer{fp: Fingerprint(key), mac: hmac.New(sha256.New, key), buf: make([]byte, 0, MaxMessageSize)}
}

func (s *signer) tagOf(signed []byte) [2 * TagSize]byte {
	s.mac.Reset()
	s.mac.Write(signed)
	var sum [sha256.Size]byte
	var out [2 * TagSize]byte
	hex.Encode(out[:], s.mac.Sum(sum[:0])[:TagSize])
	return out
}

// sign makes m a signed message of incarnation inc and sequence seq.
func (s *signer) sign(m *Message, inc, seq uint64) {
	m.Inc, m.Seq, m.KeyID = inc, seq, s.fp
	s.buf = m.appendSigned(s.buf[:0])
	tag := s.tagOf(s.buf)
	m.Tag = string(tag[:])
}

// verify reports whether m's tag is right; m names this signer's key.
func (s *signer) verify(m *Message) bool {
	s.buf = m.appendSigned(s.buf[:0])
	tag := s.tagOf(s.buf)
	return subtle.ConstantTimeCompare(tag[:], []byte(m.Tag)) == 1
}

// TagSize is the tag's size in bytes: 128 bits of HMAC-SHA256.
const TagSize = 16

// redactKeys replaces each run of 32 or more hex digits (a key, or most
// of one, typed into the wrong command) with "<redacted>", so that an
// error message never repeats a key.
func redactKeys(s string) string {
	var b strings.Builder
	run := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && isHexDigit(s[i]) {
			run++
			continue
		}
		if run >= 32 {
			b.WriteString("<redacted>")
		} else {
			b.WriteString(s[i-run : i])
		}
		run = 0
		if i < len(s) {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// clip quotes at most 64 bytes of what a user wrote, keys redacted.
func clip(s string) string {
	s = redactKeys(s)
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// AddKey adds a key to the keyring and returns its fingerprint. The
// first key of a keyless node becomes primary, but the node keeps
// sending plain until SetAuth (docs/protocol.md §9.3).
func (n *Node) AddKey(key []byte) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fp, err := n.ring.add(key)
	if err == nil {
		n.mu.logf("cluster: key %s added", fp)
	}
	return fp, err
}

// UseKey makes the key with fingerprint fp the one that signs.
func (n *Node) UseKey(fp string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.ring.use(fp); err != nil {
		return err
	}
	n.mu.logf("cluster: signing with key %s", fp)
	return nil
}

// RemoveKey removes the key with fingerprint fp. The last key cannot be
// removed while the node signs.
func (n *Node) RemoveKey(fp string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.ring.keys) == 1 && n.ring.find(fp) == 0 && n.auth != AuthPlain {
		return fmt.Errorf("key %s is the last key and auth is %v: set auth plain first", fp, n.auth)
	}
	if err := n.ring.remove(fp); err != nil {
		return err
	}
	n.mu.logf("cluster: key %s removed", fp)
	return nil
}

// SetAuth changes what the node sends and accepts (docs/protocol.md §9.3).
func (n *Node) SetAuth(a AuthMode) error {
	if a < AuthPlain || a > AuthKeyed {
		return fmt.Errorf("bad auth mode %d", a)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if a != AuthPlain && len(n.ring.keys) == 0 {
		return fmt.Errorf("auth %v needs a key: key add <64 hex digits> first", a)
	}
	if n.auth != a {
		n.mu.logf("cluster: auth %v (was %v)", a, n.auth)
	}
	n.auth = a
	return nil
}
