// Package pdk writes Pulp plugins in Go (Go 1.24 or newer, GOOS=wasip1
// GOARCH=wasm, -buildmode=c-shared). It provides the five exports the host calls,
// decodes the manifest's config into your struct, parses each step's event into
// types, and wraps every import of the contract (docs/ABI.md) in a function that
// returns an *Error carrying the host's status and last_error text.
//
//	type app struct{ greeting string }
//
//	func (a *app) Init(c pdk.Config) error {
//		var cfg struct{ Greeting string `json:"greeting"` }
//		if err := c.Decode(&cfg); err != nil {
//			return err
//		}
//		a.greeting = cfg.Greeting
//		return pdk.HTTPRegister("GET", "/hello/:name")
//	}
//
//	func (a *app) Step(env pdk.Envelope, ev pdk.Event) error {
//		if r := ev.HTTP; r != nil {
//			return r.Reply().Text(200, a.greeting+" "+r.Params["name"]+"\n")
//		}
//		return nil
//	}
//
//	func (a *app) Shutdown() error { return nil }
//
//	func main() {}
//
//	func init() { pdk.Register(&app{}) }
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
// The module needs nothing but the standard library, so it builds without a module
// proxy, and runs unchanged on the Go Pulp host (same ABI).
package pdk

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Plugin is what a Go plugin implements; Register it from an init function.
type Plugin interface {
	// Init is pulp_init: the manifest's [config] (decode it with Config.Decode).
	// An error fails the load (logged, status 1 or the error's status).
	Init(Config) error
	// Step is one event, or an idle tick (Event.Kind is ""). An error is logged;
	// an error while handling ev.HTTP also answers that request 500 if it is
	// still open.
	Step(Envelope, Event) error
	// Shutdown is pulp_shutdown.
	Shutdown() error
}

var plugin Plugin

// Register makes p this module's plugin.
func Register(p Plugin) { plugin = p }

// Config is the manifest's [config] as the host sends it (msgpack).
type Config struct{ raw []byte }

// Raw is the config's msgpack bytes (empty when there is none).
func (c Config) Raw() []byte { return c.raw }

// Decode fills v (a pointer to a struct with json tags, or a map) from the config:
// integers arrive as int64 and fit any numeric field they are in range of.
func (c Config) Decode(v any) error {
	if len(c.raw) == 0 {
		return nil
	}
	tree, err := Decode(c.raw)
	if err != nil {
		return &Error{Status: StatusBadEncoding, Message: "config: " + err.Error()}
	}
	j, err := json.Marshal(jsonable(tree))
	if err == nil {
		err = json.Unmarshal(j, v)
	}
	if err != nil {
		return &Error{Status: StatusBadEncoding, Message: "config: " + err.Error()}
	}
	return nil
}

// jsonable turns a decoded msgpack tree into values encoding/json can write.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
	}
	return v
}

// Envelope is what every step carries besides its event.
type Envelope struct {
	CallNumber uint64 // 0, 1, 2, ...: every step, idle or not
	WallTime   uint64 // Unix nanoseconds when the host made the call
}

// Event is one step's event. Kind is "" for an idle tick; the field of its kind is
// set; Payload holds the payload of every kind, decoded.
type Event struct {
	Kind    string
	HTTP    *Request
	WsOpen  *WsOpen
	WsFrame *WsFrame
	WsClose *WsClose
	Payload map[string]any
}

// ParseStep reads a step's input: the 20-byte header, then the event.
func ParseStep(in []byte) (Envelope, Event, error) {
	if len(in) < 20 {
		return Envelope{}, Event{}, fmt.Errorf("a step input of %d bytes, under 20", len(in))
	}
	env := Envelope{binary.LittleEndian.Uint64(in[0:]), binary.LittleEndian.Uint64(in[8:])}
	n := uint64(binary.LittleEndian.Uint32(in[16:]))
	if uint64(len(in)-20) < n {
		return env, Event{}, fmt.Errorf("payload_len %d is past the input's end", n)
	}
	if n == 0 {
		return env, Event{}, nil
	}
	ev, err := ParseEvent(in[20 : 20+n])
	return env, ev, err
}

// ParseEvent reads a StepEvent map {kind, payload}.
func ParseEvent(b []byte) (Event, error) {
	v, err := Decode(b)
	if err != nil {
		return Event{}, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Event{}, fmt.Errorf("an event that is not a map")
	}
	kind, _ := m["kind"].(string)
	if kind == "" {
		return Event{}, fmt.Errorf("an event without a kind")
	}
	p, _ := m["payload"].(map[string]any)
	ev := Event{Kind: kind, Payload: p}
	switch kind {
	case "http.request":
		ev.HTTP = &Request{
			ID: asUint(p["id"]), Method: asStr(p["method"]), Path: asStr(p["path"]),
			Params: asStrMap(p["params"]), Query: asStrMap(p["query"]),
			Headers: asStrMap(p["headers"]), Body: asBytes(p["body"]),
		}
	case "ws.open":
		ev.WsOpen = &WsOpen{ConnID: asUint(p["conn_id"]), Path: asStr(p["path"]),
			Query: asStrMap(p["query"]), Headers: asStrMap(p["headers"])}
	case "ws.frame":
		ev.WsFrame = &WsFrame{ConnID: asUint(p["conn_id"]), Opcode: int(asUint(p["opcode"])), Payload: asBytes(p["payload"])}
	case "ws.close":
		ev.WsClose = &WsClose{ConnID: asUint(p["conn_id"]), Code: int(asUint(p["code"])), Reason: asStr(p["reason"])}
	}
	return ev, nil
}

func asUint(v any) uint64 {
	switch x := v.(type) {
	case int64:
		if x >= 0 {
			return uint64(x)
		}
	case uint64:
		return x
	}
	return 0
}

func asStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

func asBytes(v any) []byte {
	switch x := v.(type) {
	case []byte:
		return x
	case string:
		return []byte(x)
	}
	return nil
}

func asStrMap(v any) map[string]string {
	out := map[string]string{}
	if m, ok := v.(map[string]any); ok {
		for k, e := range m {
			out[k] = asStr(e)
		}
	}
	return out
}

// Buffers handed to the host stay referenced until pulp_free, so the GC neither
// frees nor reuses them while the host holds their address.
var pinned = map[uintptr][]byte{}

// owned takes a result the host wrote into a pulp_alloc'ed block: unpinned, the
// GC now owns it like any slice.
func owned(ptr, n uint32) []byte {
	if ptr == 0 || n == 0 {
		return nil
	}
	b := pinned[uintptr(ptr)]
	delete(pinned, uintptr(ptr))
	if uint32(len(b)) < n {
		return nil
	}
	return b[:n]
}
