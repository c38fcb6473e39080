package track

import (
	"testing"
)

func TestContribute(t *testing.T) {
	ok, failed := Result{OK: true}, Result{OK: false}
	file := func(v int) Result { return Result{OK: v == 0, Value: v} }
	tests := []struct {
		name   string
		kind   Kind
		weight int
		r      Result
		want   Contribution
	}{
		{"positive weight while OK adds", "script", 20, ok, Contribution{Delta: 20}},
		{"positive weight while failed: nothing", "script", 20, failed, Contribution{}},
		{"negative weight while OK: nothing", "script", -20, ok, Contribution{}},
		{"negative weight while failed subtracts", "script", -20, failed, Contribution{Delta: -20}},
		{"weight 0 while OK: nothing", "script", 0, ok, Contribution{}},
		{"weight 0 and failed: fault", "script", 0, failed, Contribution{Fault: true}},
		{"interface down, weight 0: fault", "interface", 0, failed, Contribution{Fault: true}},
		{"interface down, weight -50", "interface", -50, failed, Contribution{Delta: -50}},
		{"process up, weight 10", "process", 10, ok, Contribution{Delta: 10}},
		{"process down, weight 0: fault", "process", 0, failed, Contribution{Fault: true}},
		{"script weight 253", "script", 253, ok, Contribution{Delta: 253}},
		{"script weight -253", "script", -253, failed, Contribution{Delta: -253}},
		{"file weight 0, value 0", "file", 0, file(0), Contribution{}},
		{"file weight 0, value 1: fault", "file", 0, file(1), Contribution{Fault: true}},
		{"file weight 0, value -1: fault", "file", 0, file(-1), Contribution{Fault: true}},
		{"file multiplies", "file", -10, file(3), Contribution{Delta: -30}},
		{"file multiplies a negative value", "file", -10, file(-3), Contribution{Delta: 30}},
		{"file value 0 with weight", "file", -10, file(0), Contribution{}},
		{"file exactly -253", "file", -1, file(253), Contribution{Delta: -253}},
		{"file below -253: fault", "file", -1, file(254), Contribution{Fault: true}},
		{"file -254 weight: fault", "file", -254, file(1), Contribution{Fault: true}},
		{"file huge value: fault", "file", -1, file(1 << 62), Contribution{Fault: true}},
		{"file huge negative value: fault", "file", 1, file(-1 << 62), Contribution{Fault: true}},
		{"file large positive", "file", 254, file(2), Contribution{Delta: 508}},
		{"file ignores OK", "file", -10, Result{OK: true, Value: 2}, Contribution{Delta: -20}},
	}
	for _, tt := range tests {
		if got := Contribute(tt.kind, tt.weight, tt.r); got != tt.want {
			t.Errorf("%s: Contribute(%q, %d, %+v) = %+v, want %+v", tt.name, tt.kind, tt.weight, tt.r, got, tt.want)
		}
	}
}

func TestRiseFall(t *testing.T) {
	// Each step: the observation, then the state and whether it changed.
	type step struct{ in, state, changed bool }
	tests := []struct {
		name       string
		rise, fall int
		steps      []step
	}{
		{"1/1", 1, 1, []step{
			{true, true, false}, {false, false, true}, {false, false, false}, {true, true, true},
		}},
		{"0 means 1", 0, 0, []step{
			{false, false, true}, {true, true, true},
		}},
		{"rise 1 fall 2", 1, 2, []step{
			{false, true, false}, {true, true, false}, {false, true, false}, {false, false, true},
			{false, false, false}, {true, true, true},
		}},
		{"rise 2 fall 2", 2, 2, []step{
			{false, true, false}, {false, false, true}, {true, false, false}, {false, false, false},
			{true, false, false}, {true, true, true}, {true, true, false},
		}},
		{"rise 3 fall 1", 3, 1, []step{
			{false, false, true}, {true, false, false}, {true, false, false}, {true, true, true},
			{false, false, true},
		}},
	}
	for _, tt := range tests {
		rf := NewRiseFall(tt.rise, tt.fall)
		for i, s := range tt.steps {
			state, changed := rf.Observe(s.in)
			if state != s.state || changed != s.changed {
				t.Errorf("%s: step %d: Observe(%v) = %v, %v, want %v, %v", tt.name, i, s.in, state, changed, s.state, s.changed)
			}
		}
	}
}
