//go:build wasm

package pdk

import (
	"fmt"
	"unsafe"
)

// ---- the exports ----

//go:wasmexport pulp_alloc
func pulpAlloc(size int32) int32 {
	if size < 0 {
		return 0
	}
	b := make([]byte, max(size, 1))
	p := uintptr(unsafe.Pointer(&b[0]))
	pinned[p] = b
	return int32(p)
}

//go:wasmexport pulp_free
func pulpFree(ptr, size int32) { delete(pinned, uintptr(ptr)) }

// lent is the host's bytes at ptr for the call in progress.
func lent(ptr, n int32) []byte {
	if ptr == 0 || n <= 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(ptr))), n)
}

func statusOf(err error) int32 {
	if e, ok := err.(*Error); ok && e.Status != 0 {
		return e.Status
	}
	return 1
}

//go:wasmexport pulp_init
func pulpInit(ptr, n int32) int32 {
	if plugin == nil {
		Log(LevelError, "pulp_init: no plugin registered (call pdk.Register from an init function)")
		return 1
	}
	cfg := Config{raw: append([]byte(nil), lent(ptr, n)...)}
	if err := guard("pulp_init", func() error { return plugin.Init(cfg) }); err != nil {
		Log(LevelError, "pulp_init failed: "+err.Error())
		return statusOf(err)
	}
	return 0
}

//go:wasmexport pulp_step
func pulpStep(ptr, n int32) int32 {
	env, ev, err := ParseStep(lent(ptr, n))
	if err != nil {
		Log(LevelError, "pulp_step: "+err.Error())
		return 0
	}
	if plugin == nil {
		return 0
	}
	if err := guard("pulp_step", func() error { return plugin.Step(env, ev) }); err != nil {
		Log(LevelWarn, fmt.Sprintf("step %d: %v", env.CallNumber, err))
		// The client is not left waiting for the host's timeout. Refused when the
		// plugin answered it already, which is fine.
		if ev.HTTP != nil && answerFailed != nil {
			answerFailed(ev.HTTP)
		}
	}
	return 0
}

//go:wasmexport pulp_shutdown
func pulpShutdown() int32 {
	if plugin == nil {
		return 0
	}
	if err := guard("pulp_shutdown", plugin.Shutdown); err != nil {
		Log(LevelError, "pulp_shutdown: "+err.Error())
		return statusOf(err)
	}
	return 0
}

// guard logs a panic, then panics on: the host sees the trap, with the reason in
// its log first.
func guard(what string, f func() error) error {
	defer func() {
		if r := recover(); r != nil {
			Log(LevelError, fmt.Sprintf("panic in %s: %v", what, r))
			panic(r)
		}
	}()
	return f()
}

//go:wasmexport pulp_on_call
func pulpOnCall(np, nl, ap, al, rp, rl int32) int32 {
	c, ok := plugin.(Callable)
	if !ok {
		return callAnswer(rp, rl, []byte("this plugin serves no calls (its Plugin is not a pdk.Callable)"), StatusNotFound)
	}
	name := string(lent(np, nl))
	args := append([]byte(nil), lent(ap, al)...)
	var out []byte
	err := guard("pulp_on_call", func() error {
		var e error
		out, e = c.OnCall(name, args)
		return e
	})
	if err != nil {
		code := int32(StatusFailed)
		if e, ok := err.(*Error); ok && e.Status != 0 {
			code = e.Status
		}
		return callAnswer(rp, rl, []byte(err.Error()), code)
	}
	return callAnswer(rp, rl, out, 0)
}

// callAnswer hands b to the host through pulp_on_call's out-pointers (in a
// pulp_alloc buffer the host frees) and returns code.
func callAnswer(rp, rl int32, b []byte, code int32) int32 {
	if len(b) > 0 {
		p := pulpAlloc(int32(len(b)))
		if p == 0 {
			return StatusAllocFailed
		}
		copy(lent(p, int32(len(b))), b)
		*(*uint32)(unsafe.Pointer(uintptr(rp))) = uint32(p)
		*(*uint32)(unsafe.Pointer(uintptr(rl))) = uint32(len(b))
	}
	return code
}
