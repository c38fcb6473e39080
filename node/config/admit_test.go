package config

import (
	"errors"
	"testing"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func admitDoc(gen uint64, prio uint32) *haav1.Fleet {
	return &haav1.Fleet{Generation: gen, Instances: []*haav1.FleetInstance{{Name: "VI_1", Vrid: 1,
		Vips: []string{"10.0.0.1"}, Priority: &prio}}}
}

func TestAdmitFleet(t *testing.T) {
	stored, other := admitDoc(3, 100), admitDoc(3, 90)
	winner, loser := stored, other
	if NewerFleet(other, stored) {
		winner, loser = other, stored
	}
	for _, tt := range []struct {
		name            string
		stored, pending *haav1.Fleet
		doc             *haav1.Fleet
		adopt           bool
		gen             uint64
		same            bool
		err             error
	}{
		{"first", nil, nil, admitDoc(0, 100), false, 1, false, nil},
		{"next", stored, nil, admitDoc(0, 90), false, 4, false, nil},
		{"same again", stored, nil, admitDoc(3, 100), false, 3, true, nil},
		{"older", stored, nil, admitDoc(2, 100), false, 0, false, ErrFleetStale},
		{"conflict", stored, nil, other, false, 0, false, ErrFleetConflict},
		{"adopt the winner", loser, nil, winner, true, 3, false, nil},
		{"adopt never the loser", winner, nil, loser, true, 0, false, ErrFleetConflict},
		{"under a pending newer one", stored, admitDoc(5, 80), admitDoc(4, 90), false, 0, false, ErrFleetStale},
		{"the pending one retried", stored, admitDoc(5, 80), admitDoc(5, 80), false, 5, false, nil},
		{"next above pending", stored, admitDoc(5, 80), admitDoc(0, 70), false, 6, false, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, err := AdmitFleet(tt.stored, tt.pending, tt.doc, tt.adopt, "n1")
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err == nil && (a.Generation != tt.gen || a.Same != tt.same) {
				t.Fatalf("got %+v, want generation %d same %v", a, tt.gen, tt.same)
			}
		})
	}
	if NewerFleet(stored, stored) || NewerFleet(stored, other) == NewerFleet(other, stored) || !NewerFleet(stored, nil) {
		t.Fatal("NewerFleet must order every two documents one way")
	}
}
