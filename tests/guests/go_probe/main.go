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
	case "imports":
		// Every wrapper the notes and echo examples do not use, against the real
		// host: fs, entropy, fetch (the URL comes in the event).
		if err := pdk.FSWrite("dir/a.txt", []byte("hello")); err != nil {
			return err
		}
		read, err := pdk.FSRead("dir/a.txt")
		if err != nil {
			return err
		}
		if err := pdk.FSDelete("dir/a.txt"); err != nil {
			return err
		}
		_, gone := pdk.FSRead("dir/a.txt")
		escape := pdk.FSWrite("../x", []byte("no"))
		buf := make([]byte, 32)
		if err := pdk.Random(buf); err != nil {
			return err
		}
		nonzero := false
		for _, b := range buf {
			nonzero = nonzero || b != 0
		}
		url, _ := ev.Payload["url"].(string)
		got, err := pdk.HTTPFetch("", url, nil, nil, 0)
		if err != nil {
			return err
		}
		_, denied := pdk.HTTPFetch("", "http://169.254.169.254/", nil, nil, 0)
		pdk.Logf(pdk.LevelInfo, "probe imports: read %q then %s; escape %s; entropy %t nonzero; fetch %d %q; metadata %s",
			read, status(gone), status(escape), nonzero, got.Status, got.Body, status(denied))
	}
	return nil
}

func (probe) Shutdown() error { return nil }

// status is an import error's status, as the Rust probe prints it.
func status(err error) string {
	if e, ok := err.(*pdk.Error); ok {
		return map[int32]string{pdk.StatusNotFound: "Err(NotFound)", pdk.StatusInvalid: "Err(Invalid)", pdk.StatusDenied: "Err(Denied)"}[e.Status]
	}
	return fmt.Sprint(err)
}

func main() {}

func init() { pdk.Register(probe{}) }
