package pdk

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// docs/ABI.md §5's http.request vector.
const httpVector = "82a46b696e64ac687474702e72657175657374a77061796c6f616487a26964" +
	"01a66d6574686f64a3474554a470617468a82f6563686f2f6869a6706172616d7381a36d7367a26869a5" +
	"717565727980a76865616465727380a4626f6479c400"

func step(payload []byte) []byte {
	in := make([]byte, 20, 20+len(payload))
	in[0], in[8], in[16] = 3, 9, byte(len(payload))
	return append(in, payload...)
}

func TestTheABIHTTPVectorIsATypedRequest(t *testing.T) {
	p, _ := hex.DecodeString(httpVector)
	env, ev, err := ParseStep(step(p))
	if err != nil || env.CallNumber != 3 || env.WallTime != 9 || ev.Kind != "http.request" {
		t.Fatalf("%v %+v %+v", err, env, ev)
	}
	r := ev.HTTP
	if r.ID != 1 || r.Method != "GET" || r.Path != "/echo/hi" || r.Params["msg"] != "hi" || len(r.Body) != 0 {
		t.Fatalf("%+v", r)
	}
	if r.Reply() != Reply(1) {
		t.Fatal(r.Reply())
	}
}

func TestATickHasNoKindAndGarbageIsAnError(t *testing.T) {
	if _, ev, err := ParseStep(step(nil)); err != nil || ev.Kind != "" {
		t.Fatal(ev, err)
	}
	p, _ := hex.DecodeString(httpVector)
	for cut := 0; cut < len(p); cut++ {
		if _, err := ParseEvent(p[:cut]); err == nil {
			t.Fatalf("cut at %d parsed", cut)
		}
	}
	if _, _, err := ParseStep(make([]byte, 19)); err == nil {
		t.Fatal("a short input parsed")
	}
	deep := append([]byte(strings.Repeat("\x91", 100000)), 0xc0)
	if _, err := Decode(deep); err == nil || !strings.Contains(err.Error(), "deeply") {
		t.Fatal(err)
	}
	if _, err := Decode([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Fatal("a huge array length parsed")
	}
}

func TestValuesRoundTrip(t *testing.T) {
	in := []any{nil, true, int64(-5), int64(1 << 40), int64(-1 << 40), 1.5, "héllo", []byte("hello")}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(b)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Fatalf("%v %#v", err, out)
	}
	b, _ = Encode(Map{{"z", 1}, {"a", "x"}})
	if hex.EncodeToString(b) != "82a17a01a161a178" {
		t.Fatal(hex.EncodeToString(b))
	}
}

func TestConfigDecodesIntoAStructFromTheInt64WireForm(t *testing.T) {
	// marker = 424242, greeting = "hello from manifest" (ABI.md §5)
	raw, _ := hex.DecodeString("82a66d61726b6572d30000000000067932a8677265657469" +
		"6e67b368656c6c6f2066726f6d206d616e6966657374")
	var c struct {
		Marker   uint32 `json:"marker"`
		Greeting string `json:"greeting"`
	}
	if err := (Config{raw}).Decode(&c); err != nil || c.Marker != 424242 || c.Greeting != "hello from manifest" {
		t.Fatalf("%v %+v", err, c)
	}
	if err := (Config{[]byte{0xc1}}).Decode(&c); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestImportsOffWasmAreNotDeclared(t *testing.T) {
	err := HTTPRegister("GET", "/")
	if e, ok := err.(*Error); !ok || e.Status != StatusNotDeclared {
		t.Fatal(err)
	}
}
