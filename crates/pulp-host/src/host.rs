//! The host: one wasmtime `Engine`, its epoch ticker, and the settings plugins share.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use pulp_ext::host::HostShared;
use pulp_ext::wasmtime::{Config, Engine};
use pulp_ext::Shared;

/// How often the engine's epoch advances: the granularity of call deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings shared by every plugin of a host.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Root of the plugins' storage folders (`<root>/<name>`). Default `./data`.
    pub storage_root: PathBuf,
    /// Where compiled modules are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel, so that `[limits] fuel` can be enforced (costs some speed).
    pub fuel: bool,
    /// Host-level settings sections for capabilities' shared services, e.g.
    /// `"http"` → `{listen = "127.0.0.1:8080"}` for the HTTP listener.
    pub settings: BTreeMap<String, toml::Table>,
    /// Refuse modules whose manifest pins no `wasm_sha256` (`pulp run --require-pinned`).
    pub require_pinned: bool,
    /// Record what crosses into each plugin instance (`pulp run --record`).
    pub record: Option<crate::record::RecordConfig>,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            storage_root: PathBuf::from("data"),
            cache_dir: HostConfig::default_cache_dir(),
            fuel: false,
            settings: BTreeMap::new(),
            require_pinned: false,
            record: None,
        }
    }
}

impl HostConfig {
    /// `<user cache dir>/pulp/modules` (e.g. `~/.cache/pulp/modules`), when there is one.
    pub fn default_cache_dir() -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join("pulp").join("modules"))
    }
}

/// One wasmtime engine and the settings its plugins share. Cheap to clone; the
/// epoch ticker stops when the last clone (plugins hold one) is dropped.
#[derive(Clone)]
pub struct Host(Arc<Inner>);

struct Inner {
    engine: Engine,
    config: HostConfig,
    shared: Shared,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    recording: Option<Arc<crate::record::Writer>>,
}

impl Host {
    /// A host with its engine (epoch interruption on; fuel if asked) and epoch ticker.
    pub fn new(config: HostConfig) -> anyhow::Result<Host> {
        let mut c = Config::new();
        c.epoch_interruption(true);
        c.consume_fuel(config.fuel);
        c.max_wasm_stack(512 * 1024);
        let engine = Engine::new(&c).map_err(anyhow::Error::from)?;
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("pulp-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(EPOCH_TICK);
                        engine.increment_epoch();
                        pulp_ext::tape::tick();
                    }
                })?
        };
        let recording = match &config.record {
            Some(r) => Some(
                crate::record::Writer::start(r.clone())
                    .map_err(|e| anyhow::anyhow!("cannot record into {}: {e}", r.dir.display()))?,
            ),
            None => None,
        };
        Ok(Host(Arc::new(Inner {
            recording,
            engine,
            shared: Shared::new(config.settings.clone()),
            config,
            stop,
            ticker: Some(ticker),
        })))
    }

    /// The engine every plugin of this host compiles and runs on.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }

    /// The recording writer, when this host records.
    pub(crate) fn recording(&self) -> Option<&Arc<crate::record::Writer>> {
        self.0.recording.as_ref()
    }

    /// Waits until everything recorded so far is written to the recording's files.
    pub fn sync_recording(&self) {
        if let Some(w) = &self.0.recording {
            w.sync();
        }
    }

    /// Bytes of recording dropped so far (the writer was behind or the disk refused).
    pub fn recording_dropped(&self) -> u64 {
        self.0
            .recording
            .as_ref()
            .map_or(0, |w| w.dropped.load(Ordering::Relaxed))
    }

    /// The host's settings.
    pub fn config(&self) -> &HostConfig {
        &self.0.config
    }

    /// The settings and services (the HTTP listener) its plugins' capabilities share.
    pub fn shared(&self) -> &Shared {
        &self.0.shared
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
