// {{name}}: a Pulp plugin in Go (1.24 or newer). Build it, check it, run it:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//	pulp check pulp.plugin.toml && pulp run pulp.plugin.toml
//
// pulp.dev/pdk (in pulp-pdk/) wraps every import and parses each step's event;
// docs/ABI.md is the contract.
package main

import "pulp.dev/pdk"

type app struct{ events int }

func (a *app) Init(c pdk.Config) error {
	var cfg struct {
		Greeting string `json:"greeting"`
	}
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	pdk.Logf(pdk.LevelInfo, "{{name}}: started (%s)", cfg.Greeting)
	return nil
}

// Step is one event, or an idle tick (ev.Kind is "").
func (a *app) Step(env pdk.Envelope, ev pdk.Event) error {
	if ev.Kind != "" {
		a.events++
		pdk.Logf(pdk.LevelInfo, "{{name}}: event %s", ev.Kind)
	}
	return nil
}

func (a *app) Shutdown() error {
	pdk.Logf(pdk.LevelInfo, "{{name}}: shutting down after %d events", a.events)
	return nil
}

func main() {}

func init() { pdk.Register(&app{}) }
