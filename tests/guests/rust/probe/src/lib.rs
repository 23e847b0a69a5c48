//! The SDK probe: logs its config at init; on an event of kind "panic" it panics,
//! on "error" it returns an error, on anything else (and on ticks) it does nothing.

use pulp_pdk::{Envelope, Error, Event, Plugin, Status};

#[derive(serde::Deserialize, Default)]
struct Config {
    #[serde(default)]
    marker: u32,
    #[serde(default)]
    greeting: String,
    #[serde(default)]
    nested: Nested,
}

#[derive(serde::Deserialize, Default)]
struct Nested {
    #[serde(default)]
    list: Vec<i64>,
}

struct Probe;

impl Plugin for Probe {
    type Config = Config;

    fn init(c: Config) -> pulp_pdk::Result<Probe> {
        pulp_pdk::info!("probe: marker {} greeting {:?} list {:?}", c.marker, c.greeting, c.nested.list);
        Ok(Probe)
    }

    fn step(&mut self, _: &Envelope, event: Event) -> pulp_pdk::Result<()> {
        match event {
            Event::Other { kind, .. } if kind == "panic" => panic!("the probe was asked to panic"),
            Event::Other { kind, .. } if kind == "error" => {
                Err(Error::new(Status::Invalid, "the probe was asked to fail"))
            }
            Event::Other { kind, payload } if kind == "imports" => {
                // Every wrapper the notes and echo examples do not use, against
                // the real host: fs, entropy, fetch (the URL comes in the event).
                let args: std::collections::BTreeMap<String, String> =
                    pulp_pdk::msgpack::decode(&payload)?;
                use pulp_pdk::{entropy, fs, http::Fetch};
                fs::write("dir/a.txt", b"hello")?;
                let read = fs::read("dir/a.txt")?;
                fs::delete("dir/a.txt")?;
                let gone = fs::read("dir/a.txt").map_err(|e| e.status);
                let escape = fs::write("../x", b"no").map_err(|e| e.status);
                let mut buf = [0u8; 32];
                entropy::fill(&mut buf)?;
                let fetched = Fetch::get(args["url"].clone()).send()?;
                let denied = Fetch::get("http://169.254.169.254/").send().map_err(|e| e.status);
                pulp_pdk::info!(
                    "probe imports: read {:?} then {:?}; escape {:?}; entropy {} nonzero; fetch {} {:?}; metadata {:?}",
                    String::from_utf8_lossy(&read),
                    gone,
                    escape,
                    buf.iter().any(|b| *b != 0),
                    fetched.status,
                    String::from_utf8_lossy(&fetched.body),
                    denied
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

pulp_pdk::plugin!(Probe);
