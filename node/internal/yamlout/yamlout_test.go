package yamlout

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// roundTrip checks that the YAML reads back as the JSON it came from.
func roundTrip(t *testing.T, js string) string {
	t.Helper()
	y, err := FromJSON([]byte(js))
	if err != nil {
		t.Fatalf("FromJSON(%s): %v", js, err)
	}
	back, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("YAML does not parse: %v\n%s", err, y)
	}
	var want, got any
	if err := json.Unmarshal([]byte(js), &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(back, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("round trip of %s:\n%s\nreads back as %s", js, y, back)
	}
	return string(y)
}

func TestRoundTrip(t *testing.T) {
	for _, js := range []string{
		`{}`,
		`{"name":"n1","instances":[{"name":"VI_1","interface":"eth0","vrid":51,"priority":200,"vips":["10.77.0.100/24","10.77.0.101/24 label eth0:vip"],"advertInterval":"0.100s","preempt":true}]}`,
		`{"a":[],"b":{},"c":[{}],"d":[[1,2],[]],"e":null,"f":[{"x":{"y":[{"z":"1"}]}}]}`,
		`{"s":["true","no","Off","y","~","null","1","1.5","-2","0x1f","1e5","10:20","2026-12-07",".inf","10.0.0.1","-x","a b","a: b","#c","x #y","a:","", "ü", "tab\there", "new\nline", "quote\"", "back\\slash", "\u0001", "key: [x]", "{a}", "*ref", "&anchor", "!tag", "|", ">", "%", "@x", "` + "`" + `x", "a,b", "é:x"]}`,
		`{"weird key":1,"true":2,"10.0.0.1":3,"eth0:vip":4}`,
		`{"n":[1,-2,3.5,1e-7,18446744073709551615]}`,
	} {
		roundTrip(t, js)
	}
}

func TestOrderKept(t *testing.T) {
	y := roundTrip(t, `{"zeta":1,"alpha":{"z":1,"a":2},"mid":[{"q":1,"b":2}]}`)
	want := "zeta: 1\nalpha:\n  z: 1\n  a: 2\nmid:\n  - q: 1\n    b: 2\n"
	if y != want {
		t.Fatalf("got\n%s\nwant\n%s", y, want)
	}
	if !strings.Contains(roundTrip(t, `{"vips":["10.0.0.1/24"]}`), "vips: [10.0.0.1/24]") {
		t.Fatal("an address is written plain")
	}
}

// FuzzStrings: any string, as a value and as a key, reads back as itself.
func FuzzStrings(f *testing.F) {
	for _, s := range []string{"", "a", "true", "1:2", "- x", "a: b", "\x00", "é", "0o17", "1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(`"`+s+`"`)) && strings.ContainsAny(s, "\"\\") {
			t.Skip()
		}
		b, err := json.Marshal(map[string]any{"v": s, "l": []string{s, s}})
		if err != nil {
			t.Skip()
		}
		var back map[string]any
		if json.Unmarshal(b, &back) != nil || back["v"] != s {
			t.Skip() // invalid UTF-8: JSON itself changes it
		}
		roundTrip(t, string(b))
		k, _ := json.Marshal(map[string]int{s: 1})
		roundTrip(t, string(k))
	})
}

// FuzzDocuments: any JSON object reads back as itself.
func FuzzDocuments(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,{"b":[]}],"c":{"d":null}}`, `{"x":[[1],[2,[3]]]}`, `{"k":"v","l":[true,false,-1.5e3]}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, js string) {
		var v map[string]any
		if json.Unmarshal([]byte(js), &v) != nil || v == nil {
			t.Skip()
		}
		b, _ := json.Marshal(v) // valid UTF-8, no duplicate keys
		roundTrip(t, string(b))
	})
}

// TestWriterPieces: a document written member by member, a list element
// by element, is the document written at once.
func TestWriterPieces(t *testing.T) {
	js := `{"name":"n1","instances":[{"name":"VI_1","vips":["10.0.0.1/24"]},{"name":"VI_2","vrid":2}],"gossip":{"bind":"127.0.0.1:7946"}}`
	whole, err := FromJSON([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	var w Writer
	calls := 0
	if err := w.Field("name", []byte(`"n1"`)); err != nil {
		t.Fatal(err)
	}
	if err := w.ListField("instances", [][]byte{[]byte(`{"name":"VI_1","vips":["10.0.0.1/24"]}`), []byte(`{"name":"VI_2","vrid":2}`)},
		func() { calls++ }); err != nil {
		t.Fatal(err)
	}
	if err := w.Field("gossip", []byte(`{"bind":"127.0.0.1:7946"}`)); err != nil {
		t.Fatal(err)
	}
	if string(w.Bytes()) != string(whole) || calls != 2 {
		t.Fatalf("pieces:\n%s\nwhole:\n%s\n(%d calls)", w.Bytes(), whole, calls)
	}
}
