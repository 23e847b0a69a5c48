// echo: HTTP in, a WebSocket echo and an SSE clock, the same contract as the C
// example (examples/echo/echo.c):
//
//	GET  /echo/:msg   -> 200 "<msg>" (+ the query's `suffix`); X-Echo comes back
//	POST /echo        -> 200 with the request's body and Content-Type
//	GET  /later/:msg  -> "later: <msg>", answered two steps after it arrived
//	WS   /ws          -> every frame back as it came; the text "bye" closes (4000)
//	GET  /clock       -> SSE: a "tick" event every second; POST /clock sends its
//	                     body to every subscriber as a "message" event
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o echo.wasm .
package main

import (
	"strconv"

	"pulp.dev/pdk"
)

type later struct {
	reply pdk.Reply
	due   uint64
	text  string
}

type echo struct {
	later      []later
	lastSecond uint64
	ticks      uint64
}

func text() map[string]string { return map[string]string{"Content-Type": "text/plain; charset=utf-8"} }

func (e *echo) Init(pdk.Config) error {
	for _, r := range [][2]string{{"GET", "/echo/:msg"}, {"POST", "/echo"}, {"GET", "/later/:msg"}, {"POST", "/clock"}} {
		if err := pdk.HTTPRegister(r[0], r[1]); err != nil {
			pdk.Logf(pdk.LevelError, "echo: cannot route %s %s: %v", r[0], r[1], err)
			return err
		}
	}
	if err := pdk.WSRegister("/ws"); err != nil {
		return err
	}
	if err := pdk.SSERegister("/clock"); err != nil {
		return err
	}
	pdk.Log(pdk.LevelInfo, "echo: routes registered")
	return nil
}

func (e *echo) Step(env pdk.Envelope, ev pdk.Event) error {
	kept := e.later[:0]
	for _, l := range e.later {
		if env.CallNumber >= l.due {
			l.reply.Send(200, text(), []byte(l.text))
		} else {
			kept = append(kept, l)
		}
	}
	e.later = kept
	if second := env.WallTime / 1_000_000_000; second != e.lastSecond {
		e.lastSecond = second
		e.ticks++
		pdk.SSEEmit("/clock", "tick", strconv.FormatUint(e.ticks, 10), strconv.FormatUint(second, 10))
	}
	switch {
	case ev.HTTP != nil:
		return e.request(ev.HTTP, env.CallNumber)
	case ev.WsFrame != nil:
		f := ev.WsFrame
		if f.Opcode == 1 && string(f.Payload) == "bye" {
			return pdk.WSClose(f.ConnID, 4000, "bye")
		}
		return pdk.WSSend(f.ConnID, f.Opcode, f.Payload)
	}
	return nil
}

func (e *echo) request(q *pdk.Request, call uint64) error {
	r := q.Reply()
	switch {
	case q.Method == "POST" && q.Path == "/echo":
		ty, ok := q.Headers["Content-Type"]
		if !ok || len(ty) >= 128 {
			ty = "application/octet-stream"
		}
		return r.Send(200, map[string]string{"Content-Type": ty}, q.Body)
	case q.Method == "POST":
		status := 202
		if pdk.SSEEmit("/clock", "message", "", string(q.Body)) != nil {
			status = 400
		}
		return r.Send(status, text(), nil)
	case len(q.Path) > 7 && q.Path[:7] == "/later/":
		if len(e.later) >= 64 {
			return r.Send(503, text(), []byte("too many"))
		}
		e.later = append(e.later, later{r, call + 2, "later: " + q.Params["msg"]})
		return nil
	}
	body := q.Params["msg"] + q.Query["suffix"]
	if len(body) > 511 {
		body = body[:511]
	}
	h := text()
	if x := q.Headers["X-Echo"]; x != "" && len(x) < 128 {
		h["X-Echo"] = x
	}
	return r.Send(200, h, []byte(body))
}

func (e *echo) Shutdown() error { return nil }

func main() {}

func init() { pdk.Register(&echo{}) }
