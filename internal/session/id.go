package session

import (
	"crypto/rand"
	"encoding/base64"
)

// idLen is the length of a session id: 128 random bits, base64url.
const idLen = 22

// newID returns 128 bits from crypto/rand: an id nobody can guess.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on Go ≥ 1.24
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// validID tells whether s is an id newID could have returned: 22 base64url
// characters, the last of which carries only the two bits left of 128.
// Anything else is never looked up: it starts a fresh session.
func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isBase64URL(s[i]) {
			return false
		}
	}
	switch s[idLen-1] { // 0bxx0000: A, Q, g, w
	case 'A', 'Q', 'g', 'w':
		return true
	}
	return false
}

func isBase64URL(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_'
}
