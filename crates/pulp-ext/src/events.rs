//! Step events: what capabilities post for a plugin, served fairly by source.
//!
//! Each source (say `"http"` and `"ws"`) has its own bounded queue; the plugin's
//! thread takes one event per step, going round the sources in turn so that no
//! source starves another.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::host::{HostEvents, Waker};
use crate::{Budget, Charge, OverBudget};

/// What tells an event's sender what became of it: refused ([`Event::on_refused`]) or
/// its step failed ([`Event::on_failed`]).
type Notify = Arc<dyn Fn(&str) + Send + Sync>;

/// One event for `pulp_step`: a kind and its payload map, already msgpack.
#[derive(Clone)]
pub struct Event {
    kind: String,
    payload: Vec<u8>,
    refuse: Option<Notify>,
    failed: Option<Notify>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.payload == other.payload
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("kind", &self.kind)
            .field("payload_len", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl Event {
    /// An event whose payload is `payload` encoded as a msgpack map.
    pub fn new(kind: impl Into<String>, payload: &impl Serialize) -> Result<Event, crate::Error> {
        Ok(Event::from_raw(kind, crate::msgpack::encode(payload)?))
    }

    /// An event from an already-encoded msgpack payload.
    pub fn from_raw(kind: impl Into<String>, payload: Vec<u8>) -> Event {
        Event {
            kind: kind.into(),
            payload,
            refuse: None,
            failed: None,
        }
    }

    /// Sets what tells the sender that the plugin could not take this event (it
    /// does not fit the guest's memory): the HTTP listener answers 413, a WebSocket
    /// closes with 1009. Called at most once, by the host, with the reason.
    pub fn on_refused(mut self, refuse: impl Fn(&str) + Send + Sync + 'static) -> Event {
        self.refuse = Some(Arc::new(refuse));
        self
    }

    /// Tells the sender the plugin could not take this event. Called by the host.
    pub fn refuse(&self, why: &str) {
        if let Some(r) = &self.refuse {
            r(why);
        }
    }

    /// Sets what tells the sender that the step which took this event failed (a
    /// trap, its deadline): the HTTP listener answers 500 at once instead of letting
    /// the client wait for its timeout. Called at most once, by the host, with the
    /// reason (for the host's log; it may name the plugin's internals).
    pub fn on_failed(mut self, failed: impl Fn(&str) + Send + Sync + 'static) -> Event {
        self.failed = Some(Arc::new(failed));
        self
    }

    /// Tells the sender the step that took this event failed. Called by the host.
    pub fn fail(&self, why: &str) {
        if let Some(f) = &self.failed {
            f(why);
        }
    }

    /// Bytes the event holds (charged to the plugin's host memory budget while queued).
    pub fn size(&self) -> usize {
        self.kind.len() + self.payload.len()
    }

    /// The event's kind (`"http.request"`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The payload map, msgpack-encoded.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The `StepEvent` bytes of ABI §3: `{kind, payload}` with the payload embedded inline.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.payload.len() + self.kind.len() + 24);
        self.encode_prefix_into(out);
        out.extend_from_slice(&self.payload);
    }

    /// The `StepEvent` bytes before the payload (`{kind: .., payload:`), so a host
    /// can copy the payload itself only once.
    pub fn encode_prefix_into(&self, out: &mut Vec<u8>) {
        rmp::encode::write_map_len(out, 2).expect("Vec write");
        rmp::encode::write_str(out, "kind").expect("Vec write");
        rmp::encode::write_str(out, &self.kind).expect("Vec write");
        rmp::encode::write_str(out, "payload").expect("Vec write");
    }
}

/// Why an event was not posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The source's queue was full.
    #[error("the plugin's {queue} event queue is full ({capacity} events)")]
    Full {
        /// The source whose queue was full.
        queue: &'static str,
        /// Its capacity.
        capacity: usize,
    },
    /// Queuing it would pass the plugin's host memory budget.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    /// The plugin is stopping or stopped for good: its queues are closed.
    #[error("the plugin is not running (its event queues are closed)")]
    Closed,
}

/// What [`Events::next`] found.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// An event to deliver.
    Event(Event),
    /// Nothing arrived before the timeout: time for an idle tick.
    Idle,
    /// The queue was closed: the plugin is stopping.
    Closed,
}

/// A plugin's event queues. Cheap to clone; every clone is the same queues.
#[derive(Clone)]
pub struct Events(Arc<Shared>);

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
    budget: Budget,
    /// Told after every post and at close: the scheduler of the plugin's instances.
    waker: OnceLock<Arc<dyn Waker>>,
    /// The plugin's name, for the dropped-events metric (set by its view).
    plugin: OnceLock<String>,
}

struct Queues {
    /// Each event with the budget charge it holds until it is taken.
    sources: Vec<(&'static str, VecDeque<(Event, Charge)>)>,
    turn: usize,
    capacity: usize,
    closed: bool,
    /// Readers blocked in `next`: a post wakes one only when there is one (no
    /// futex call per event while the plugin is busy).
    waiting: usize,
}

impl HostEvents for Events {
    fn new(capacity: usize) -> Events {
        <Events as HostEvents>::with_budget(capacity, Budget::default())
    }

    fn with_budget(capacity: usize, budget: Budget) -> Events {
        Events(Arc::new(Shared {
            queues: Mutex::new(Queues {
                sources: Vec::new(),
                turn: 0,
                capacity,
                closed: false,
                waiting: 0,
            }),
            ready: Condvar::new(),
            budget,
            waker: OnceLock::new(),
            plugin: OnceLock::new(),
        }))
    }

    fn set_waker(&self, waker: Arc<dyn Waker>) -> Result<(), Arc<dyn Waker>> {
        self.0.waker.set(waker)
    }

    fn waker(&self) -> Option<Arc<dyn Waker>> {
        self.0.waker.get().cloned()
    }

    fn next(&self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        let mut q = self.lock();
        loop {
            if let Some(found) = take(&mut q) {
                return found;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Idle;
            }
            q.waiting += 1;
            q = self
                .0
                .ready
                .wait_timeout(q, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            q.waiting -= 1;
        }
    }

    fn try_next(&self) -> Next {
        take(&mut self.lock()).unwrap_or(Next::Idle)
    }

    fn close(&self) {
        let dropped = {
            let mut q = self.lock();
            q.closed = true;
            std::mem::take(&mut q.sources)
        };
        drop(dropped);
        self.0.ready.notify_all();
        if let Some(w) = self.0.waker.get() {
            w.closed();
        }
    }
}

/// The next event, taking sources in turn, or `Closed`; `None` when none waits.
fn take(q: &mut Queues) -> Option<Next> {
    if q.closed {
        return Some(Next::Closed);
    }
    let n = q.sources.len();
    for i in 0..n {
        let at = (q.turn + i) % n;
        if let Some((event, _charge)) = q.sources[at].1.pop_front() {
            q.turn = at + 1;
            return Some(Next::Event(event));
        }
    }
    None
}

impl Events {
    /// The plugin's host memory budget, which queued events are charged to.
    pub fn budget(&self) -> &Budget {
        &self.0.budget
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.0.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Posts an event from `source`, or refuses it when that source's queue is
    /// full, its bytes would pass the plugin's host memory budget, or the queues
    /// are closed.
    pub fn post(&self, source: &'static str, event: Event) -> Result<(), PostError> {
        let posted = match self.0.budget.charge(event.size()) {
            Ok(charge) => self.push(source, event, charge, true),
            Err(e) => Err(e.into()),
        };
        if let Err(PostError::Full { .. } | PostError::OverBudget(_)) = &posted {
            self.dropped(source);
        }
        posted
    }

    /// Counts an event refused for room (`pulp_plugin_events_dropped_total`).
    #[cold]
    fn dropped(&self, source: &'static str) {
        if !crate::metrics::enabled() {
            return;
        }
        let plugin = self.0.plugin.get().map_or("", String::as_str);
        crate::metrics::metrics()
            .events_dropped
            .get_or_create(&crate::metrics::SourceLabels {
                plugin: plugin.to_string(),
                source,
            })
            .inc();
    }

    /// Names the plugin these queues are for (in metrics); the first name stays.
    pub(crate) fn name_plugin(&self, name: &str) {
        let _ = self.0.plugin.set(name.to_string());
    }

    /// Posts an event that must not be dropped while the plugin runs (a connection
    /// closing), whatever the queue's fill and the budget. Its sender must bound how
    /// many it posts (one per counted connection). Dropped when the queues are closed.
    pub fn post_always(&self, source: &'static str, event: Event) {
        let charge = self.0.budget.charge_anyway(event.size());
        let _ = self.push(source, event, charge, false);
    }

    fn push(
        &self,
        source: &'static str,
        event: Event,
        charge: Charge,
        bounded: bool,
    ) -> Result<(), PostError> {
        let mut q = self.lock();
        if q.closed {
            return Err(PostError::Closed);
        }
        let capacity = q.capacity;
        let queue = match q.sources.iter().position(|(s, _)| *s == source) {
            Some(i) => &mut q.sources[i].1,
            None => {
                q.sources.push((source, VecDeque::new()));
                &mut q.sources.last_mut().expect("just pushed").1
            }
        };
        if bounded && queue.len() >= capacity {
            return Err(PostError::Full {
                queue: source,
                capacity,
            });
        }
        queue.push_back((event, charge));
        let wake = q.waiting > 0;
        drop(q);
        if wake {
            self.0.ready.notify_one();
        }
        if let Some(w) = self.0.waker.get() {
            w.wake();
        }
        Ok(())
    }

    /// Events waiting, over all sources.
    pub fn len(&self) -> usize {
        self.lock().sources.iter().map(|(_, q)| q.len()).sum()
    }

    /// True when no event waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `other` is a clone of these same queues (the same plugin).
    pub fn same_as(&self, other: &Events) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// True once [`Events::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str) -> Event {
        Event::from_raw(kind, vec![0x80])
    }

    #[test]
    fn refused_events_are_counted_per_plugin_and_source() {
        use crate::host::HostPlugin;
        let e = Events::with_budget(1, Budget::new(100));
        let _view = crate::Plugin::new("dropper", "/nonexistent", Default::default(), e.clone());
        let count = |source| {
            crate::metrics::metrics()
                .events_dropped
                .get_or_create(&crate::metrics::SourceLabels {
                    plugin: "dropper".into(),
                    source,
                })
                .get()
        };
        e.post("http", ev("http.request")).unwrap();
        assert!(e.post("http", ev("http.request")).is_err(), "queue full");
        assert!(e.post("http", ev("http.request")).is_err(), "queue full");
        let big = Event::from_raw("ws.frame", vec![0; 200]);
        assert!(e.post("ws", big).is_err(), "over the budget");
        assert_eq!((count("http"), count("ws")), (2, 1));
        e.close();
        assert!(e.post("ws", ev("ws.frame")).is_err());
        assert_eq!(count("ws"), 1, "a closed plugin's events are not drops");
    }

    #[test]
    fn sources_are_served_in_turn() {
        let e = Events::new(10);
        for _ in 0..3 {
            e.post("http", ev("http.request")).unwrap();
        }
        e.post("ws", ev("ws.frame")).unwrap();
        let kinds: Vec<String> = (0..4)
            .map(|_| match e.next(Duration::ZERO) {
                Next::Event(ev) => ev.kind().to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            ["http.request", "ws.frame", "http.request", "http.request"]
        );
        assert_eq!(e.next(Duration::from_millis(1)), Next::Idle);
    }

    #[test]
    fn full_queue_refuses_but_post_always_does_not() {
        let e = Events::new(1);
        e.post("ws", ev("ws.frame")).unwrap();
        assert_eq!(
            e.post("ws", ev("ws.frame")).unwrap_err(),
            PostError::Full {
                queue: "ws",
                capacity: 1
            }
        );
        e.post_always("ws", ev("ws.close"));
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn queued_bytes_are_charged_until_taken_or_closed() {
        let e = Events::with_budget(100, Budget::new(64));
        let big = Event::from_raw("x", vec![0; 40]);
        e.post("a", big.clone()).unwrap();
        assert_eq!(e.budget().used(), 41);
        assert!(matches!(
            e.post("a", big.clone()),
            Err(PostError::OverBudget(_))
        ));
        assert!(matches!(e.next(Duration::ZERO), Next::Event(_)));
        assert_eq!(e.budget().used(), 0);
        e.post("a", big.clone()).unwrap();
        e.close();
        assert_eq!(e.budget().used(), 0);
        assert_eq!(e.post("a", big), Err(PostError::Closed));
    }

    #[test]
    fn close_wakes_a_waiting_reader() {
        let e = Events::new(1);
        let e2 = e.clone();
        let t = std::thread::spawn(move || e2.next(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        e.close();
        assert_eq!(t.join().unwrap(), Next::Closed);
    }

    #[test]
    fn step_event_bytes_match_abi_vector() {
        let mut payload = Vec::new();
        rmp::encode::write_map_len(&mut payload, 0).unwrap();
        let mut out = Vec::new();
        Event::from_raw("http.request", payload).encode_into(&mut out);
        assert_eq!(&out[..7], &[0x82, 0xa4, b'k', b'i', b'n', b'd', 0xac]);
        assert_eq!(*out.last().unwrap(), 0x80);
    }
}
