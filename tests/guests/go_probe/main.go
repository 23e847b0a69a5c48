// The Go SDK probe (tests/tests/sdks.rs, the step bench): logs its config at init;
// an event of kind "panic" panics, "error" returns an error, anything else (and a
// tick) does nothing.
package main

import (
	"fmt"
	"strings"
	"time"

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
	// Only when the manifest declares inbound HTTP (sdks.rs): every request fails.
	pdk.HTTPRegister("GET", "/fail")
	return nil
}

func (probe) Step(_ pdk.Envelope, ev pdk.Event) error {
	if ev.HTTP != nil {
		return &pdk.Error{Status: pdk.StatusInvalid, Message: "the probe fails every request"}
	}
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
	case "docker":
		image, _ := ev.Payload["image"].(string)
		return dockerKit(image)
	}
	return nil
}

func (probe) Shutdown() error { return nil }

// dockerKit calls every docker wrapper against the real engine and logs one line
// of what each gave (sdks.rs expects the same line from the Rust probe).
func dockerKit(image string) error {
	ran, err := pdk.DockerRun(pdk.Map{{"image", image}, {"cmd", []string{"sh", "-c", "cat; echo err >&2; exit 3"}}, {"stdin", pdk.Bin("in")}})
	if err != nil {
		return err
	}
	c, err := pdk.DockerCreate(pdk.Map{{"image", image}, {"cmd", []string{"sh", "-c", "echo started; exec sleep 60"}}, {"name", "kit"}})
	if err != nil {
		return err
	}
	id, _ := c["id"].(string)
	name, _ := c["name"].(string)
	got, err := pdk.DockerGet(id)
	if err != nil {
		return err
	}
	listed, err := pdk.DockerList(nil)
	if err != nil {
		return err
	}
	ex, err := pdk.DockerExec(id, []string{"echo", "x"})
	if err != nil {
		return err
	}
	if err := pdk.DockerWriteFile(id, "/tmp/f", []byte("data")); err != nil {
		return err
	}
	file, err := pdk.DockerReadFile(id, "/tmp/f")
	if err != nil {
		return err
	}
	logs := ""
	for i := 0; i < 50 && logs == ""; i++ {
		if logs, err = pdk.DockerLogs(id, 10); err != nil {
			return err
		}
		if logs == "" {
			time.Sleep(100 * time.Millisecond)
		}
	}
	stats, err := pdk.DockerStats(id)
	if err != nil {
		return err
	}
	if err := pdk.DockerRestart(id); err != nil {
		return err
	}
	after, err := pdk.DockerGet(id)
	if err != nil {
		return err
	}
	events, err := pdk.DockerEvents(0, 100)
	if err != nil {
		return err
	}
	started := false
	for _, e := range events {
		m, _ := e.(map[string]any)
		started = started || (m["container_id"] == id && m["action"] == "start")
	}
	if err := pdk.DockerDestroy(id); err != nil {
		return err
	}
	_, gone := pdk.DockerGet(id)
	_, denied := pdk.DockerRun(pdk.Map{{"image", "debian:12"}})
	limit, _ := stats["mem_limit_bytes"].(int64)
	if u, ok := stats["mem_limit_bytes"].(uint64); ok {
		limit = int64(u)
	}
	pdk.Logf(pdk.LevelInfo, "probe docker: run %d %q %q; name %t; %s, listed %d; exec %d %q; file %q; logs %q; memory limit %t; restarted %s; start event %t; destroyed then %s; other image %s",
		ran["exit_code"], ran["stdout"], ran["stderr"], strings.HasSuffix(name, "-kit"), got["state"], len(listed),
		ex["exit_code"], ex["output"], file, logs, limit > 0, after["state"], started, status(gone), status(denied))
	return nil
}

// status is an import error's status, as the Rust probe prints it.
func status(err error) string {
	if e, ok := err.(*pdk.Error); ok {
		return map[int32]string{pdk.StatusNotFound: "Err(NotFound)", pdk.StatusInvalid: "Err(Invalid)", pdk.StatusDenied: "Err(Denied)"}[e.Status]
	}
	return fmt.Sprint(err)
}

func main() {}

func init() { pdk.Register(probe{}) }
