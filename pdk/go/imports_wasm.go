//go:build wasm

package pdk

import "unsafe"

// The imports of module pulp (docs/ABI.md §4).

//go:wasmimport pulp last_error
func hostLastError(out, outLen unsafe.Pointer) int32

//go:wasmimport pulp pulp_call
func hostCall(t unsafe.Pointer, tn int32, n unsafe.Pointer, nn int32, a unsafe.Pointer, an int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp log
func hostLog(level int32, msg unsafe.Pointer, n int32) int32

//go:wasmimport pulp entropy_fill
func hostEntropyFill(buf unsafe.Pointer, n int32) int32

//go:wasmimport pulp sqlite_exec
func hostSQLiteExec(q unsafe.Pointer, qn int32, p unsafe.Pointer, pn int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp sqlite_query
func hostSQLiteQuery(q unsafe.Pointer, qn int32, p unsafe.Pointer, pn int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp fs_read
func hostFSRead(path unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp fs_write
func hostFSWrite(path unsafe.Pointer, n int32, data unsafe.Pointer, dn int32) int32

//go:wasmimport pulp fs_delete
func hostFSDelete(path unsafe.Pointer, n int32) int32

//go:wasmimport pulp http_fetch
func hostHTTPFetch(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp http_register
func hostHTTPRegister(req unsafe.Pointer, n int32) int32

//go:wasmimport pulp http_respond
func hostHTTPRespond(req unsafe.Pointer, n int32) int32

//go:wasmimport pulp ws_register
func hostWSRegister(path unsafe.Pointer, n int32) int32

//go:wasmimport pulp ws_send
func hostWSSend(req unsafe.Pointer, n int32) int32

//go:wasmimport pulp ws_close
func hostWSClose(req unsafe.Pointer, n int32) int32

//go:wasmimport pulp sse_register
func hostSSERegister(path unsafe.Pointer, n int32) int32

//go:wasmimport pulp sse_emit
func hostSSEEmit(req unsafe.Pointer, n int32) int32

//go:wasmimport pulp docker_run
func hostDockerRun(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_create
func hostDockerCreate(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_get
func hostDockerGet(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_list
func hostDockerList(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_exec
func hostDockerExec(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_logs
func hostDockerLogs(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_stats
func hostDockerStats(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_files_read
func hostDockerFilesRead(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_events_poll
func hostDockerEventsPoll(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32

//go:wasmimport pulp docker_files_write
func hostDockerFilesWrite(req unsafe.Pointer, n int32) int32

//go:wasmimport pulp docker_restart
func hostDockerRestart(req unsafe.Pointer, n int32) int32

//go:wasmimport pulp docker_destroy
func hostDockerDestroy(req unsafe.Pointer, n int32) int32
