//! {{name}}: a Pulp plugin in Rust. `pulp_pdk` (in pulp-pdk/) has a typed function
//! for every import and parses each step's event; docs/ABI.md is the contract.

use pulp_pdk::{Envelope, Event, Plugin};

/// The manifest's `[config]`.
#[derive(serde::Deserialize, Default)]
struct Config {
    #[serde(default)]
    greeting: String,
}

struct App {
    events: u64,
}

impl Plugin for App {
    type Config = Config;

    fn init(config: Config) -> pulp_pdk::Result<App> {
        pulp_pdk::info!("{{name}}: started ({})", config.greeting);
        Ok(App { events: 0 })
    }

    /// One event per step, or an idle tick.
    fn step(&mut self, _envelope: &Envelope, event: Event) -> pulp_pdk::Result<()> {
        if event != Event::Tick {
            self.events += 1;
            pulp_pdk::info!("{{name}}: event {event:?}");
        }
        Ok(())
    }

    fn shutdown(&mut self) -> pulp_pdk::Result<()> {
        pulp_pdk::info!("{{name}}: shutting down after {} events", self.events);
        Ok(())
    }
}

pulp_pdk::plugin!(App);
