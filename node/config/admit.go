package config

import (
	"errors"
	"fmt"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

// Errors of AdmitFleet (test with errors.Is).
var (
	ErrFleetStale    = errors.New("fleet document older than the one stored")
	ErrFleetConflict = errors.New("another fleet document has this generation")
)

// Admission is what storing a fleet document on a node does.
type Admission struct {
	// Generation is the document's generation: the one it carries, or the
	// next one when it carries 0.
	Generation uint64
	// Same: the node stores this very document already.
	Same bool
}

// AdmitFleet decides whether node may store doc, given the document it
// stores (nil: none) and a newer one it could not run (pending, nil:
// none). It is pure; the rules:
//
//   - generation 0 means the next one (above both);
//   - a document older than the stored one, or than a pending newer one
//     (except that very one, retried), is refused (ErrFleetStale);
//   - another document of the stored generation is refused
//     (ErrFleetConflict), unless adopt (catching up from a peer after two
//     concurrent applies) and it wins by its hash (NewerFleet): every node
//     then settles on the same one.
func AdmitFleet(stored, pending, doc *haav1.Fleet, adopt bool, node string) (Admission, error) {
	cur := stored.GetGeneration()
	floor := cur
	if pending != nil && pending.GetGeneration() > floor && DocumentHash(pending) != DocumentHash(doc) {
		floor = pending.GetGeneration()
	}
	a := Admission{Generation: doc.GetGeneration()}
	if a.Generation == 0 {
		a.Generation = max(cur, floor) + 1
	}
	switch {
	case a.Generation < floor:
		return Admission{}, fmt.Errorf("document generation %d is older than generation %d stored on %s: get the fleet again and re-apply: %w",
			a.Generation, floor, node, ErrFleetStale)
	case stored != nil && a.Generation == cur:
		switch dh, ch := DocumentHash(doc), DocumentHash(stored); {
		case dh == ch:
			a.Same = true
		case adopt && dh > ch:
			// The race's winner replaces this node's document.
		default:
			return Admission{}, fmt.Errorf("%s already stores another document of generation %d (applied concurrently?): re-run the apply, it takes the next generation: %w",
				node, cur, ErrFleetConflict)
		}
	}
	return a, nil
}

// NewerFleet orders documents by generation, then hash: every node picks
// the same one of two concurrent applies. Any document is newer than nil.
func NewerFleet(doc, than *haav1.Fleet) bool {
	if than == nil {
		return doc != nil
	}
	if doc.GetGeneration() != than.GetGeneration() {
		return doc.GetGeneration() > than.GetGeneration()
	}
	return DocumentHash(doc) > DocumentHash(than)
}
