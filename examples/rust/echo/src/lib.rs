//! echo: HTTP in, a WebSocket echo and an SSE clock, the same contract as the C
//! example (`examples/echo/echo.c`):
//!
//! ```text
//! GET  /echo/:msg   -> 200 "<msg>" (+ the query's `suffix`); X-Echo comes back
//! POST /echo        -> 200 with the request's body and Content-Type
//! GET  /later/:msg  -> "later: <msg>", answered two steps after it arrived
//! WS   /ws          -> every frame back as it came; the text "bye" closes (4000)
//! GET  /clock       -> SSE: a "tick" event every second; POST /clock sends its
//!                      body to every subscriber as a "message" event
//! ```

use pulp_pdk::http::{self, Reply, Request};
use pulp_pdk::{sse, ws, Envelope, Event, Plugin};

const TEXT: (&str, &str) = ("Content-Type", "text/plain; charset=utf-8");

#[derive(Default)]
struct Echo {
    /// Requests to answer later: (reply, due call number, text).
    later: Vec<(Reply, u64, String)>,
    last_second: u64,
    ticks: u64,
}

impl Plugin for Echo {
    type Config = ();

    fn init(_: ()) -> pulp_pdk::Result<Echo> {
        for (method, path) in [("GET", "/echo/:msg"), ("POST", "/echo"), ("GET", "/later/:msg"), ("POST", "/clock")] {
            http::register(method, path)
                .inspect_err(|e| pulp_pdk::error!("echo: cannot route {method} {path}: {e}"))?;
        }
        ws::register("/ws")?;
        sse::register("/clock")?;
        pulp_pdk::log::info("echo: routes registered");
        Ok(Echo::default())
    }

    fn step(&mut self, env: &Envelope, event: Event) -> pulp_pdk::Result<()> {
        let due: Vec<_> = self.later.iter().filter(|l| env.call_number >= l.1).cloned().collect();
        self.later.retain(|l| env.call_number < l.1);
        // Deferred and periodic work never fails this step: a client that has
        // left (its reply is refused) must not cost the event below its answer.
        for (reply, _, text) in due {
            let _ = reply.send(200, &[TEXT], text.as_bytes());
        }
        let second = env.wall_time / 1_000_000_000;
        if second != self.last_second {
            self.last_second = second;
            self.ticks += 1;
            let _ = sse::emit("/clock", Some("tick"), Some(&self.ticks.to_string()), &second.to_string());
        }
        match event {
            Event::Http(req) => self.on_request(&req, env.call_number),
            Event::WsFrame(f) if f.text() == Some("bye") => ws::close(f.conn_id, 4000, "bye"),
            Event::WsFrame(f) if f.opcode == 1 => ws::send_text(f.conn_id, f.text().unwrap_or("")),
            Event::WsFrame(f) => ws::send_binary(f.conn_id, &f.payload),
            _ => Ok(()),
        }
    }
}

pulp_pdk::plugin!(Echo);

impl Echo {
    fn on_request(&mut self, req: &Request, call: u64) -> pulp_pdk::Result<()> {
        let r = req.reply();
        let param = |k: &str| req.params.get(k).map_or("", String::as_str);
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", "/echo") => {
                let ty = req.headers.get("Content-Type").filter(|t| t.len() < 128);
                let ty = ty.map_or("application/octet-stream", String::as_str);
                r.send(200, &[("Content-Type", ty)], &req.body)
            }
            ("POST", _) => {
                let ok = std::str::from_utf8(&req.body)
                    .is_ok_and(|body| sse::emit("/clock", Some("message"), None, body).is_ok());
                r.send(if ok { 202 } else { 400 }, &[TEXT], b"")
            }
            (_, path) if path.starts_with("/later/") && path.len() > 7 => {
                if self.later.len() >= 64 {
                    return r.send(503, &[TEXT], b"too many");
                }
                self.later.push((r, call + 2, format!("later: {}", param("msg"))));
                Ok(())
            }
            _ => {
                let mut body = format!("{}{}", param("msg"), req.query.get("suffix").map_or("", String::as_str));
                truncate(&mut body, 511);
                match req.headers.get("X-Echo").filter(|x| !x.is_empty() && x.len() < 128) {
                    Some(x) => r.send(200, &[TEXT, ("X-Echo", x)], body.as_bytes()),
                    None => r.send(200, &[TEXT], body.as_bytes()),
                }
            }
        }
    }
}

fn truncate(s: &mut String, max: usize) {
    let mut at = max.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
}
