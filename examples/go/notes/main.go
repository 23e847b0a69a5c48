// notes: a JSON notes API on storage.sqlite, the same contract as the C example
// (examples/notes/notes.c), answer for answer:
//
//	POST   /notes      {"text": "..."}  -> 201 {"id": N, "text": "..."}
//	GET    /notes                       -> 200 [{"id": N, "text": "..."}, ...]
//	GET    /notes/:id                   -> 200 {"id": N, "text": "..."}, or 404
//	DELETE /notes/:id                   -> 204, or 404
//	malformed JSON, or no "text" string -> 400 {"error": "..."}
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o notes.wasm .
package main

import (
	"fmt"
	"strconv"
	"strings"

	"pulp.dev/pdk"
)

type notes struct{}

func (notes) Init(pdk.Config) error {
	if _, err := pdk.SQLiteExec("CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)"); err != nil {
		return err
	}
	for _, r := range [][2]string{{"POST", "/notes"}, {"GET", "/notes"}, {"GET", "/notes/:id"}, {"DELETE", "/notes/:id"}} {
		if err := pdk.HTTPRegister(r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}

func (notes) Step(_ pdk.Envelope, ev pdk.Event) error {
	if ev.HTTP != nil {
		return onRequest(ev.HTTP)
	}
	return nil
}

func (notes) Shutdown() error { return nil }

func main() {}

func init() { pdk.Register(notes{}) }

func note(id int64, text string) string {
	return fmt.Sprintf(`{"id": %d, "text": %s}`, id, jsonString(text))
}

func reply(r pdk.Reply, status int, body string) error {
	if status == 204 {
		return r.Send(204, nil, nil)
	}
	return r.JSON(status, body)
}

func replyError(r pdk.Reply, status int, message string) error {
	return reply(r, status, `{"error": `+jsonString(message)+"}")
}

// As the C example words it: what failed, then the host's last_error.
func failed(r pdk.Reply, what string) error {
	return replyError(r, 500, what+": "+pdk.LastError())
}

// notesOf renders rows of [id, text] as notes; false when a row is not one.
func notesOf(rows pdk.Rows) ([]string, bool) {
	var out []string
	for _, row := range rows.Rows {
		if len(row) != 2 {
			return nil, false
		}
		id, ok1 := row[0].(int64)
		text, ok2 := row[1].(string)
		if !ok1 || !ok2 {
			return nil, false
		}
		out = append(out, note(id, text))
	}
	return out, true
}

// noteID is the :id parameter as a positive integer; 0 when it is not one.
func noteID(req *pdk.Request) int64 {
	s := req.Params["id"]
	if s == "" || len(s) > 18 || strings.Trim(s, "0123456789") != "" {
		return 0
	}
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

func onRequest(req *pdk.Request) error {
	r := req.Reply()
	switch {
	case req.Method == "POST":
		text, errText := readText(req.Body)
		if errText != "" {
			return replyError(r, 400, "malformed JSON: "+errText)
		}
		x, err := pdk.SQLiteExec("INSERT INTO notes (text) VALUES (?)", text)
		if err != nil {
			return failed(r, "insert")
		}
		return reply(r, 201, note(x.LastInsertID, text))
	case req.Path == "/notes":
		rows, err := pdk.SQLiteQuery("SELECT id, text FROM notes ORDER BY id")
		if err != nil {
			return failed(r, "query")
		}
		n, ok := notesOf(rows)
		if !ok {
			return replyError(r, 500, "unreadable rows")
		}
		return reply(r, 200, "["+strings.Join(n, ", ")+"]")
	}
	id := noteID(req)
	missing := "no note "
	if len(req.Path) > 7 {
		missing += req.Path[7:]
	}
	missing = truncate(missing, 63)
	if id == 0 {
		return replyError(r, 404, missing)
	}
	if req.Method == "DELETE" {
		x, err := pdk.SQLiteExec("DELETE FROM notes WHERE id = ?", id)
		switch {
		case err != nil:
			return failed(r, "delete")
		case x.RowsAffected == 0:
			return replyError(r, 404, missing)
		}
		return reply(r, 204, "")
	}
	rows, err := pdk.SQLiteQuery("SELECT id, text FROM notes WHERE id = ?", id)
	if err != nil {
		return failed(r, "query")
	}
	n, ok := notesOf(rows)
	if !ok || len(n) != 1 {
		return replyError(r, 404, missing)
	}
	return reply(r, 200, n[0])
}

// truncate keeps at most max bytes of s, cut at a character boundary.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8Start(s[max]) {
		max--
	}
	return s[:max]
}

func utf8Start(b byte) bool { return b&0xc0 != 0x80 }
