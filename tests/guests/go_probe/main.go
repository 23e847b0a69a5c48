// The Go SDK probe (tests/tests/sdks.rs, the step bench): logs its config at init;
// an event of kind "panic" panics, "error" returns an error, anything else (and a
// tick) does nothing.
package main

import (
	"fmt"
	"strings"

	"pulp.dev/pdk"
)

type probe struct{}

func (probe) Init(c pdk.Config) error {
	var cfg struct {
		Marker   uint32 `json:"marker"`
		Greeting string `json:"greeting"`
		Nested   struct {
			List []int64 `json:"list"`
		} `json:"nested"`
	}
	if err := c.Decode(&cfg); err != nil {
		return err
	}
	list := make([]string, len(cfg.Nested.List))
	for i, n := range cfg.Nested.List {
		list[i] = fmt.Sprint(n)
	}
	pdk.Logf(pdk.LevelInfo, "probe: marker %d greeting %q list [%s]", cfg.Marker, cfg.Greeting, strings.Join(list, ", "))
	return nil
}

func (probe) Step(_ pdk.Envelope, ev pdk.Event) error {
	switch ev.Kind {
	case "panic":
		panic("the probe was asked to panic")
	case "error":
		return &pdk.Error{Status: pdk.StatusInvalid, Message: "the probe was asked to fail"}
	}
	return nil
}

func (probe) Shutdown() error { return nil }

func main() {}

func init() { pdk.Register(probe{}) }
