package session

import "testing"

func BenchmarkCSRFToken(b *testing.B) {
	m := newTokenMaker(testSecret)
	id := newID()
	b.ReportAllocs()
	for b.Loop() {
		_ = m.token(id)
	}
}
