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
            _ => Ok(()),
        }
    }
}

pulp_pdk::plugin!(Probe);
