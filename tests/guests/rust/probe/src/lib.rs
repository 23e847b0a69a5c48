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
        // Only when the manifest declares inbound HTTP (sdks.rs): every request fails.
        let _ = pulp_pdk::http::register("GET", "/fail");
        Ok(Probe)
    }

    fn step(&mut self, _: &Envelope, event: Event) -> pulp_pdk::Result<()> {
        match event {
            Event::Http(_) => Err(Error::new(Status::Invalid, "the probe fails every request")),
            Event::Other { kind, .. } if kind == "panic" => panic!("the probe was asked to panic"),
            Event::Other { kind, .. } if kind == "error" => {
                Err(Error::new(Status::Invalid, "the probe was asked to fail"))
            }
            Event::Other { kind, payload } if kind == "imports" => {
                // Every wrapper the notes and echo examples do not use, against
                // the real host: fs, entropy, fetch (the URL comes in the event).
                let args: std::collections::BTreeMap<String, String> =
                    pulp_pdk::msgpack::decode(payload)?;
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
            Event::Other { kind, payload } if kind == "docker" => {
                let args: std::collections::BTreeMap<String, String> =
                    pulp_pdk::msgpack::decode(payload)?;
                docker_kit(&args["image"])
            }
            _ => Ok(()),
        }
    }
}

/// Every docker wrapper against the real engine, one line of what each gave
/// (sdks.rs expects the same line from the Go probe).
fn docker_kit(image: &str) -> pulp_pdk::Result<()> {
    use pulp_pdk::docker::{self, Create, Run};
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let ran = docker::run(&Run {
        image: image.into(),
        cmd: s(&["sh", "-c", "cat; echo err >&2; exit 3"]),
        stdin: b"in".to_vec(),
        ..Run::default()
    })?;
    let c = docker::create(&Create {
        image: image.into(),
        cmd: s(&["sh", "-c", "echo started; exec sleep 60"]),
        name: Some("kit".into()),
        ..Create::default()
    })?;
    let state = docker::get(&c.id)?.state;
    let listed = docker::list(&Default::default())?.len();
    let ex = docker::exec(&c.id, &s(&["echo", "x"]))?;
    docker::write_file(&c.id, "/tmp/f", b"data")?;
    let file = docker::read_file(&c.id, "/tmp/f")?;
    let mut logs = String::new();
    for _ in 0..50 {
        logs = docker::logs(&c.id, 10)?;
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let stats = docker::stats(&c.id)?;
    docker::restart(&c.id)?;
    let after = docker::get(&c.id)?.state;
    let events = docker::events(0, 100)?;
    let started = events.iter().any(|e| e.container_id == c.id && e.action == "start");
    docker::destroy(&c.id)?;
    let gone = docker::get(&c.id).map(|_| ()).map_err(|e| e.status);
    let denied = docker::run(&Run { image: "debian:12".into(), ..Run::default() }).map(|_| ()).map_err(|e| e.status);
    pulp_pdk::info!(
        "probe docker: run {} {:?} {:?}; name {}; {state}, listed {listed}; exec {} {:?}; file {:?}; logs {:?}; memory limit {}; restarted {after}; start event {started}; destroyed then {:?}; other image {:?}",
        ran.exit_code,
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr),
        c.name.ends_with("-kit"),
        ex.exit_code,
        ex.output,
        String::from_utf8_lossy(&file),
        logs,
        stats.mem_limit_bytes > 0,
        gone,
        denied
    );
    Ok(())
}

pulp_pdk::plugin!(Probe);
