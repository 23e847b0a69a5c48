// api: the Go port of examples/api. GET /whoami asks the auth plugin
// (examples/auth), in process with pdk.Call, who the bearer token belongs to:
//
//	GET /whoami  with "Authorization: Bearer <token>"  ->  200 "hello <user>"
//	                                                        401 for an unknown token
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o api.wasm .
package main

import (
	"errors"
	"strings"

	"pulp.dev/pdk"
)

type api struct{}

func (api) Init(pdk.Config) error { return pdk.HTTPRegister("GET", "/whoami") }

func (api) Step(_ pdk.Envelope, ev pdk.Event) error {
	r := ev.HTTP
	if r == nil {
		return nil
	}
	text := map[string]string{"Content-Type": "text/plain"}
	token, ok := strings.CutPrefix(r.Headers["Authorization"], "Bearer ")
	if !ok || token == "" {
		return r.Reply().Send(401, text, []byte("send Authorization: Bearer <token>\n"))
	}
	user, err := pdk.Call("auth", "verify", []byte(token))
	var e *pdk.Error
	switch {
	case err == nil:
		return r.Reply().Send(200, text, []byte("hello "+string(user)+"\n"))
	case errors.As(err, &e) && e.Status == pdk.StatusDenied:
		return r.Reply().Send(401, text, []byte("unknown token\n"))
	default:
		return r.Reply().Send(503, text, []byte("auth failed: "+err.Error()+"\n"))
	}
}

func (api) Shutdown() error { return nil }

func init() { pdk.Register(api{}) }

func main() {}
