package fleet

import (
	"sync"

	"github.com/haa-dev/haa/node/config"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// hashMemo remembers the hashes of the few documents a node holds (the
// stored one, a pending one, the one that runs): a document is never
// changed once stored, and hashing one of thousands of virtual servers
// takes milliseconds, which the detector, the publisher and the API would
// otherwise spend every round.
type hashMemo struct {
	mu   sync.Mutex
	docs map[*haav1.Fleet]*docHashes
}

// docHashes are one document's hashes.
type docHashes struct {
	doc   string
	nodes map[string]string
}

// maxMemo bounds the documents remembered: more are forgotten at once.
const maxMemo = 8

func (m *hashMemo) of(d *haav1.Fleet) *docHashes {
	if m.docs == nil || len(m.docs) >= maxMemo {
		m.docs = map[*haav1.Fleet]*docHashes{}
	}
	h := m.docs[d]
	if h == nil {
		h = &docHashes{nodes: map[string]string{}}
		m.docs[d] = h
	}
	return h
}

// document is config.DocumentHash(d).
func (m *hashMemo) document(d *haav1.Fleet) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.of(d)
	if h.doc == "" {
		h.doc = config.DocumentHash(d)
	}
	return h.doc
}

// node is config.FleetNodeHash(d, name).
func (m *hashMemo) node(d *haav1.Fleet, name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.of(d)
	v, ok := h.nodes[name]
	if !ok {
		v = config.FleetNodeHash(d, name)
		h.nodes[name] = v
	}
	return v
}
