package fleet

import (
	"testing"
	"time"

	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func TestIssuesMustLast(t *testing.T) {
	sb := &haav1.FleetIssue{Kind: &haav1.FleetIssue_SplitBrain{SplitBrain: &haav1.SplitBrain{Segment: "10.77.0.0/24", Vrid: 51}}}
	since := map[string]time.Time{}
	t0 := time.Unix(1000, 0)
	if got := lasting([]*haav1.FleetIssue{sb}, since, t0); len(got) != 0 {
		t.Fatal("reported at once")
	}
	if got := lasting([]*haav1.FleetIssue{sb}, since, t0.Add(issueGrace)); len(got) != 1 {
		t.Fatal("not reported after the grace")
	}
	// Gone once: the clock starts again.
	lasting(nil, since, t0.Add(issueGrace+time.Second))
	if got := lasting([]*haav1.FleetIssue{sb}, since, t0.Add(issueGrace+2*time.Second)); len(got) != 0 {
		t.Fatal("a new occurrence reported at once")
	}
}
