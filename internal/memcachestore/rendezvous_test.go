package memcachestore

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

func TestSessionAndCounterShareTheirNodes(t *testing.T) {
	place := func(k string) string { return strings.TrimPrefix(k, "v:") } // as session.Placement does
	s := mustNewStorage(t, Config{Servers: []string{"a:1", "b:1", "c:1", "d:1"}, Replicas: 2, ResolveEvery: -1, KeyPrefix: "ll:", Place: place}, hooks{
		lookup: func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil },
	})
	for i := range 1000 {
		id := fmt.Sprintf("sess%04dXYZ", i)
		session, counter := s.owners(id), s.owners("v:"+id)
		if session[0] != counter[0] || session[1] != counter[1] {
			t.Fatalf("session %s and its counter live on different nodes", id)
		}
	}
}
