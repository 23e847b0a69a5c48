//go:build !wasm

package pdk

import "unsafe"

// Off wasm (unit tests on the build machine) there is no host: every import
// answers 99, NOT_DECLARED.

func hostLastError(out, outLen unsafe.Pointer) int32 { return StatusNotDeclared }

func hostLog(level int32, msg unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostCall(t unsafe.Pointer, tn int32, n unsafe.Pointer, nn int32, a unsafe.Pointer, an int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostEntropyFill(buf unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostSQLiteExec(q unsafe.Pointer, qn int32, p unsafe.Pointer, pn int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostSQLiteQuery(q unsafe.Pointer, qn int32, p unsafe.Pointer, pn int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostFSRead(path unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostFSWrite(path unsafe.Pointer, n int32, data unsafe.Pointer, dn int32) int32 {
	return StatusNotDeclared
}

func hostFSDelete(path unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostHTTPFetch(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostHTTPRegister(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostHTTPRespond(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostWSRegister(path unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostWSSend(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostWSClose(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostSSERegister(path unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostSSEEmit(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostDockerRun(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerCreate(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerGet(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerList(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerExec(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerLogs(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerStats(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerFilesRead(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerEventsPoll(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32 {
	return StatusNotDeclared
}

func hostDockerFilesWrite(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostDockerRestart(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }

func hostDockerDestroy(req unsafe.Pointer, n int32) int32 { return StatusNotDeclared }
