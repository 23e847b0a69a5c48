package pdk_test

import "pulp.dev/pdk"

// hello is the plugin of pdk/go/README.md: GET /hello/:name answers with the
// configured greeting and records the name in SQLite.
type hello struct{ greeting string }

func (h *hello) Init(c pdk.Config) error {
	var cfg struct {
		Greeting string `json:"greeting"`
	}
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	h.greeting = cfg.Greeting
	if _, err := pdk.SQLiteExec("CREATE TABLE IF NOT EXISTS seen (name TEXT)"); err != nil {
		return err
	}
	return pdk.HTTPRegister("GET", "/hello/:name")
}

func (h *hello) Step(env pdk.Envelope, ev pdk.Event) error {
	if r := ev.HTTP; r != nil {
		name := r.Params["name"]
		if _, err := pdk.SQLiteExec("INSERT INTO seen VALUES (?)", name); err != nil {
			return err
		}
		return r.Reply().Text(200, h.greeting+" "+name+"\n")
	}
	return nil
}

func (h *hello) Shutdown() error { return nil }

// A plugin registers itself from an init function of its main package:
//
//	func main() {}
//
//	func init() { pdk.Register(&hello{}) }
func Example() {
	var _ pdk.Plugin = &hello{}
}
