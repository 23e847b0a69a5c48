package pdk

import (
	"fmt"
	"unsafe"
)

// Statuses of docs/ABI.md §4.
const (
	StatusOK          int32 = 0
	StatusEmpty       int32 = 1
	StatusBadPointer  int32 = 2
	StatusBadEncoding int32 = 3
	StatusInvalid     int32 = 4
	StatusFailed      int32 = 5
	StatusNotFound    int32 = 6
	StatusAllocFailed int32 = 7
	StatusWriteFailed int32 = 8
	StatusDenied      int32 = 9
	StatusUnavailable int32 = 10
	StatusTooLarge    int32 = 11
	StatusTimeout     int32 = 12
	StatusNotDeclared int32 = 99
)

// Error is a failed import: the host's status and its last_error text.
type Error struct {
	Status  int32
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (status %d)", e.Message, e.Status) }

// Log levels.
const (
	LevelTrace int32 = iota
	LevelDebug
	LevelInfo
	LevelWarn
	LevelError
)

// ptr is the address of b's first byte (nil for an empty slice).
func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// strPtr is the address of s's bytes, which the host only reads (nil when empty):
// no copy of a string per call.
func strPtr(s string) unsafe.Pointer {
	if s == "" {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

// LastError is the host's text for this instance's most recent non-zero status.
func LastError() string {
	var p, n uint32
	if hostLastError(unsafe.Pointer(&p), unsafe.Pointer(&n)) != 0 {
		return ""
	}
	return string(owned(p, n))
}

func check(what func() string, code int32) error {
	if code == 0 {
		return nil
	}
	text := LastError()
	if text == "" {
		text = fmt.Sprintf("status %d", code)
	}
	return &Error{Status: code, Message: what() + ": " + text}
}

// withOut calls an import that answers through (ptr_out, len_out).
func withOut(what func() string, f func(out, outLen unsafe.Pointer) int32) ([]byte, error) {
	var p, n uint32
	code := f(unsafe.Pointer(&p), unsafe.Pointer(&n))
	b := owned(p, n)
	if err := check(what, code); err != nil {
		return nil, err
	}
	return b, nil
}

// call encodes req, calls an import taking it, and decodes the answer (if any).
func call(what func() string, req any, f func(req unsafe.Pointer, n int32, out, outLen unsafe.Pointer) int32) (any, error) {
	r, err := Encode(req)
	if err != nil {
		return nil, &Error{Status: StatusBadEncoding, Message: what() + ": " + err.Error()}
	}
	b, err := withOut(what, func(o, ol unsafe.Pointer) int32 { return f(ptr(r), int32(len(r)), o, ol) })
	if err != nil || len(b) == 0 {
		return nil, err
	}
	v, err := Decode(b)
	if err != nil {
		return nil, &Error{Status: StatusBadEncoding, Message: what() + ": the answer: " + err.Error()}
	}
	return v, nil
}

func send(what func() string, req any, f func(req unsafe.Pointer, n int32) int32) error {
	r, err := Encode(req)
	if err != nil {
		return &Error{Status: StatusBadEncoding, Message: what() + ": " + err.Error()}
	}
	return check(what, f(ptr(r), int32(len(r))))
}

// ---- logging, entropy ----

// Log writes msg to the host's log at level (LevelInfo ...).
func Log(level int32, msg string) {
	hostLog(level, strPtr(msg), int32(len(msg)))
}

// Logf formats and logs at level.
func Logf(level int32, format string, args ...any) { Log(level, fmt.Sprintf(format, args...)) }

// Random fills b from the host's OS generator (at most 64 KiB).
func Random(b []byte) error {
	return check(func() string { return "entropy_fill" }, hostEntropyFill(ptr(b), int32(len(b))))
}

// ---- storage.sqlite ----

// Exec is what a statement changed.
type Exec struct{ RowsAffected, LastInsertID int64 }

// Rows is a query's answer: column names, and rows of nil, bool, int64, float64,
// string or []byte.
type Rows struct {
	Columns []string
	Rows    [][]any
}

func sqlite(what, sql string, params []any, f func(q unsafe.Pointer, qn int32, p unsafe.Pointer, pn int32, o, ol unsafe.Pointer) int32) (map[string]any, error) {
	var pb []byte
	if len(params) > 0 {
		var err error
		if pb, err = Encode(params); err != nil {
			return nil, &Error{Status: StatusBadEncoding, Message: what + ": " + err.Error()}
		}
	}
	label := func() string { // the statement's first 60 bytes name it in an error
		return fmt.Sprintf("%s %q", what, sql[:min(len(sql), 60)])
	}
	b, err := withOut(label, func(o, ol unsafe.Pointer) int32 {
		return f(strPtr(sql), int32(len(sql)), ptr(pb), int32(len(pb)), o, ol)
	})
	if err != nil {
		return nil, err
	}
	v, err := Decode(b)
	m, _ := v.(map[string]any)
	if err != nil || m == nil {
		return nil, &Error{Status: StatusBadEncoding, Message: what + ": an unreadable answer"}
	}
	return m, nil
}

// SQLiteExec runs a statement (without parameters the text may hold several).
func SQLiteExec(sql string, params ...any) (Exec, error) {
	m, err := sqlite("sqlite_exec", sql, params, hostSQLiteExec)
	if err != nil {
		return Exec{}, err
	}
	n, _ := m["rows_affected"].(int64)
	id, _ := m["last_insert_id"].(int64)
	return Exec{n, id}, nil
}

// SQLiteQuery runs a query.
func SQLiteQuery(sql string, params ...any) (Rows, error) {
	m, err := sqlite("sqlite_query", sql, params, hostSQLiteQuery)
	if err != nil {
		return Rows{}, err
	}
	var r Rows
	cols, _ := m["columns"].([]any)
	for _, c := range cols {
		r.Columns = append(r.Columns, asStr(c))
	}
	rows, _ := m["rows"].([]any)
	for _, row := range rows {
		vals, _ := row.([]any)
		r.Rows = append(r.Rows, vals)
	}
	return r, nil
}

// ---- calls ----

// Call runs function name of plugin target (or of the one plugin that provides
// target) with args, and returns its answer. The manifest must list the target in
// depends_on, or it or a name it provides in consumes (else StatusDenied). A call
// cycle is StatusInvalid at once, a target busy past this step's deadline
// StatusTimeout, a stopped one StatusUnavailable; the error's text says which.
func Call(target, name string, args []byte) ([]byte, error) {
	return withOut(func() string { return "pulp_call " + target + "." + name }, func(o, ol unsafe.Pointer) int32 {
		return hostCall(strPtr(target), int32(len(target)), strPtr(name), int32(len(name)), ptr(args), int32(len(args)), o, ol)
	})
}

// Callable is a Plugin that other plugins may call (pulp_on_call): OnCall answers
// function name with args. An error reaches the caller as its status (an *Error's,
// else StatusFailed) with the error's text as its last_error.
type Callable interface {
	OnCall(name string, args []byte) ([]byte, error)
}

// ---- storage.fs ----

// FSRead reads a file of the plugin's folder.
func FSRead(path string) ([]byte, error) {
	return withOut(func() string { return "fs_read " + path }, func(o, ol unsafe.Pointer) int32 { return hostFSRead(strPtr(path), int32(len(path)), o, ol) })
}

// FSWrite writes a file atomically, creating its folders.
func FSWrite(path string, data []byte) error {
	return check(func() string { return "fs_write " + path }, hostFSWrite(strPtr(path), int32(len(path)), ptr(data), int32(len(data))))
}

// FSDelete deletes a file, a symlink or an empty folder.
func FSDelete(path string) error {
	return check(func() string { return "fs_delete " + path }, hostFSDelete(strPtr(path), int32(len(path))))
}

// ---- HTTP in ----

// HTTPRegister registers a route (`/notes/:id`, `/files/*rest`).
func HTTPRegister(method, path string) error {
	err := send(func() string { return "http_register " + method + " " + path }, Map{{"method", method}, {"path", path}}, hostHTTPRegister)
	if err == nil {
		// Set here, so that a plugin without routes does not import http_respond.
		answerFailed = func(r *Request) {
			r.Reply().Text(500, "the plugin failed while handling this request\n")
		}
	}
	return err
}

// answerFailed answers a request whose step failed 500, if it is still open
// (refused when the plugin answered it, which is fine). Nil until a route exists.
var answerFailed func(*Request)

// Request is an http.request event.
type Request struct {
	ID                     uint64
	Method, Path           string
	Params, Query, Headers map[string]string
	Body                   []byte
}

// Reply answers the request, now or in a later step (keep it).
func (r *Request) Reply() Reply { return Reply(r.ID) }

// Reply answers one request, once.
type Reply uint64

// Send answers with status, headers and body.
func (r Reply) Send(status int, headers map[string]string, body []byte) error {
	req := Map{{"id", uint64(r)}, {"status", status}, {"headers", headers}, {"body", Bin(body)}}
	return send(func() string { return fmt.Sprintf("http_respond to request %d", uint64(r)) }, req, hostHTTPRespond)
}

// Text answers with text/plain.
func (r Reply) Text(status int, text string) error {
	return r.Send(status, map[string]string{"Content-Type": "text/plain; charset=utf-8"}, []byte(text))
}

// JSON answers with an already encoded JSON body.
func (r Reply) JSON(status int, json string) error {
	return r.Send(status, map[string]string{"Content-Type": "application/json"}, []byte(json))
}

// ---- HTTP out ----

// Fetched is the answer to HTTPFetch (any status).
type Fetched struct {
	Status  int
	Headers map[string]string
	Body    []byte
}

// HTTPFetch sends a request (method "" is GET; timeoutMs 0: the capability's).
func HTTPFetch(method, url string, headers map[string]string, body []byte, timeoutMs uint32) (Fetched, error) {
	if method == "" {
		method = "GET"
	}
	if headers == nil {
		headers = map[string]string{}
	}
	req := Map{{"method", method}, {"url", url}, {"headers", headers}, {"body", Bin(body)}, {"timeout_ms", timeoutMs}}
	v, err := call(func() string { return "http_fetch " + url }, req, hostHTTPFetch)
	if err != nil {
		return Fetched{}, err
	}
	m, _ := v.(map[string]any)
	return Fetched{int(asUint(m["status"])), asStrMap(m["headers"]), asBytes(m["body"])}, nil
}

// ---- WebSocket, SSE ----

// WsOpen is a ws.open event.
type WsOpen struct {
	ConnID         uint64
	Path           string
	Query, Headers map[string]string
}

// WsFrame is a ws.frame event (Opcode 1 text, 2 binary).
type WsFrame struct {
	ConnID  uint64
	Opcode  int
	Payload []byte
}

// WsClose is a ws.close event.
type WsClose struct {
	ConnID uint64
	Code   int
	Reason string
}

// WSRegister registers a WebSocket route.
func WSRegister(path string) error {
	return check(func() string { return "ws_register " + path }, hostWSRegister(strPtr(path), int32(len(path))))
}

// WSSend sends a message (opcode 1 text, 2 binary); 12 when 256 already wait.
func WSSend(conn uint64, opcode int, payload []byte) error {
	return send(func() string { return fmt.Sprintf("ws_send to connection %d", conn) }, Map{{"conn_id", conn}, {"opcode", opcode}, {"payload", Bin(payload)}}, hostWSSend)
}

// WSClose closes a connection (code 0: 1000).
func WSClose(conn uint64, code int, reason string) error {
	return send(func() string { return fmt.Sprintf("ws_close of connection %d", conn) }, Map{{"conn_id", conn}, {"code", code}, {"reason", reason}}, hostWSClose)
}

// SSERegister registers an SSE path.
func SSERegister(path string) error {
	return check(func() string { return "sse_register " + path }, hostSSERegister(strPtr(path), int32(len(path))))
}

// SSEEmit sends an event to every subscriber of path (event and id may be "").
func SSEEmit(path, event, id, data string) error {
	req := Map{{"path", path}, {"data", data}}
	if event != "" {
		req = append(req, KV{"event", event})
	}
	if id != "" {
		req = append(req, KV{"id", id})
	}
	return send(func() string { return "sse_emit on " + path }, req, hostSSEEmit)
}

// ---- spawn.docker ----
//
// Requests and answers are msgpack maps, as in docs/ABI.md's table; these take and
// return them as Map and map[string]any.

// DockerRun runs a container to its end: {image, cmd, env, stdin, timeout_ms, ...}.
func DockerRun(req Map) (map[string]any, error) {
	return asMap(call(func() string { return "docker_run" }, req, hostDockerRun))
}

// DockerCreate creates and starts a container: {image, cmd, env, name, ...}.
func DockerCreate(req Map) (map[string]any, error) {
	return asMap(call(func() string { return "docker_create" }, req, hostDockerCreate))
}

// DockerGet describes one of this plugin's containers.
func DockerGet(id string) (map[string]any, error) {
	return asMap(call(func() string { return "docker_get " + id }, Map{{"id", id}}, hostDockerGet))
}

// DockerList lists this plugin's containers (filter keys state, name, image).
func DockerList(filter map[string]string) ([]any, error) {
	v, err := call(func() string { return "docker_list" }, Map{{"filter", filter}}, hostDockerList)
	l, _ := v.([]any)
	return l, err
}

// DockerExec runs a command in a running container: {output, exit_code}.
func DockerExec(id string, cmd []string) (map[string]any, error) {
	return asMap(call(func() string { return "docker_exec " + id }, Map{{"id", id}, {"cmd", cmd}}, hostDockerExec))
}

// DockerLogs is the last tail lines of a container's log.
func DockerLogs(id string, tail int) (string, error) {
	m, err := asMap(call(func() string { return "docker_logs " + id }, Map{{"id", id}, {"tail", tail}}, hostDockerLogs))
	return asStr(m["logs"]), err
}

// DockerStats is a container's resource use: {cpu_percent, mem_bytes, mem_limit_bytes}.
func DockerStats(id string) (map[string]any, error) {
	return asMap(call(func() string { return "docker_stats " + id }, Map{{"id", id}}, hostDockerStats))
}

// DockerReadFile reads a file inside a container.
func DockerReadFile(id, path string) ([]byte, error) {
	v, err := call(func() string { return "docker_files_read " + id + " " + path }, Map{{"id", id}, {"path", path}}, hostDockerFilesRead)
	b, _ := v.([]byte)
	return b, err
}

// DockerWriteFile writes a file inside a container.
func DockerWriteFile(id, path string, data []byte) error {
	return send(func() string { return "docker_files_write " + id + " " + path }, Map{{"id", id}, {"path", path}, {"data", Bin(data)}}, hostDockerFilesWrite)
}

// DockerRestart restarts a container.
func DockerRestart(id string) error {
	return send(func() string { return "docker_restart " + id }, Map{{"id", id}}, hostDockerRestart)
}

// DockerDestroy stops and removes a container.
func DockerDestroy(id string) error {
	return send(func() string { return "docker_destroy " + id }, Map{{"id", id}}, hostDockerDestroy)
}

// DockerEvents lists events of this plugin's containers since sinceNanos.
func DockerEvents(sinceNanos int64, limit int) ([]any, error) {
	v, err := call(func() string { return "docker_events_poll" }, Map{{"since_nanos", sinceNanos}, {"limit", limit}}, hostDockerEventsPoll)
	l, _ := v.([]any)
	return l, err
}

func asMap(v any, err error) (map[string]any, error) {
	m, _ := v.(map[string]any)
	return m, err
}
