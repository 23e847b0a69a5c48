//! notes: a JSON notes API on `storage.sqlite`, the same contract as the C example
//! (`examples/notes/notes.c`), answer for answer:
//!
//! ```text
//! POST   /notes      {"text": "..."}  -> 201 {"id": N, "text": "..."}
//! GET    /notes                       -> 200 [{"id": N, "text": "..."}, ...]
//! GET    /notes/:id                   -> 200 {"id": N, "text": "..."}, or 404
//! DELETE /notes/:id                   -> 204, or 404
//! malformed JSON, or no "text" string -> 400 {"error": "..."}
//! ```

mod json;

use pulp_pdk::http::{self, Reply, Request};
use pulp_pdk::sqlite::{self, Value};
use pulp_pdk::{Envelope, Event, Plugin};

struct Notes;

impl Plugin for Notes {
    type Config = ();

    fn init(_: ()) -> pulp_pdk::Result<Notes> {
        sqlite::exec(
            "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL)",
            &[],
        )?;
        http::register("POST", "/notes")?;
        http::register("GET", "/notes")?;
        http::register("GET", "/notes/:id")?;
        http::register("DELETE", "/notes/:id")?;
        Ok(Notes)
    }

    fn step(&mut self, _: &Envelope, event: Event) -> pulp_pdk::Result<()> {
        if let Event::Http(req) = event {
            on_request(&req)?;
        }
        Ok(())
    }
}

pulp_pdk::plugin!(Notes);

fn note(id: i64, text: &str) -> String {
    format!("{{\"id\": {id}, \"text\": {}}}", json::string(text))
}

fn reply(r: Reply, status: u16, body: &str) -> pulp_pdk::Result<()> {
    if status == 204 {
        return r.send(204, &[], b"");
    }
    r.json(status, body)
}

fn reply_error(r: Reply, status: u16, message: &str) -> pulp_pdk::Result<()> {
    reply(r, status, &format!("{{\"error\": {}}}", json::string(message)))
}

/// Rows of `[id, text]` as notes.
fn notes(rows: &sqlite::Rows) -> Option<Vec<String>> {
    rows.rows
        .iter()
        .map(|r| match r.as_slice() {
            [Value::Int(id), Value::Str(text)] => Some(note(*id, text)),
            _ => None,
        })
        .collect()
}

/// The `:id` parameter as a positive integer; 0 when it is not one.
fn note_id(req: &Request) -> i64 {
    let s = req.params.get("id").map_or("", String::as_str);
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    s.parse().unwrap_or(0)
}

fn on_request(req: &Request) -> pulp_pdk::Result<()> {
    let r = req.reply();
    // As the C example words it: what failed, then the host's `last_error`.
    let failed = |what: &str| reply_error(r, 500, &format!("{what}: {}", pulp_pdk::last_error()));
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", _) => {
            let text = match json::read_text(&req.body) {
                Ok(t) => t,
                Err(e) => return reply_error(r, 400, &format!("malformed JSON: {e}")),
            };
            match sqlite::exec("INSERT INTO notes (text) VALUES (?)", &[text.as_str().into()]) {
                Ok(x) => reply(r, 201, &note(x.last_insert_id, &text)),
                Err(_) => failed("insert"),
            }
        }
        (_, "/notes") => match sqlite::query("SELECT id, text FROM notes ORDER BY id", &[]) {
            Ok(rows) => match notes(&rows) {
                Some(n) => reply(r, 200, &format!("[{}]", n.join(", "))),
                None => reply_error(r, 500, "unreadable rows"),
            },
            Err(_) => failed("query"),
        },
        (method, path) => {
            let id = note_id(req);
            let missing = json::truncate(format!("no note {}", path.get(7..).unwrap_or("")), 63);
            if method == "DELETE" {
                if id == 0 {
                    return reply_error(r, 404, &missing);
                }
                match sqlite::exec("DELETE FROM notes WHERE id = ?", &[id.into()]) {
                    Ok(x) if x.rows_affected == 0 => reply_error(r, 404, &missing),
                    Ok(_) => reply(r, 204, ""),
                    Err(_) => failed("delete"),
                }
            } else {
                if id == 0 {
                    return reply_error(r, 404, &missing);
                }
                match sqlite::query("SELECT id, text FROM notes WHERE id = ?", &[id.into()]) {
                    Ok(rows) => match notes(&rows).as_deref() {
                        Some([one]) => reply(r, 200, one),
                        _ => reply_error(r, 404, &missing),
                    },
                    Err(_) => failed("query"),
                }
            }
        }
    }
}
