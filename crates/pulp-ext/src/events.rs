//! Step events: what capabilities post for a plugin, served fairly by source.
//!
//! Each source (say `"http"` and `"ws"`) has its own bounded queue; the plugin's
//! thread takes one event per step, going round the sources in turn so that no
//! source starves another.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One event for `pulp_step`: a kind and its payload map, already msgpack.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    kind: String,
    payload: Vec<u8>,
}

impl Event {
    /// An event whose payload is `payload` encoded as a msgpack map.
    pub fn new(kind: impl Into<String>, payload: &impl Serialize) -> Result<Event, crate::Error> {
        Ok(Event {
            kind: kind.into(),
            payload: crate::msgpack::encode(payload)?,
        })
    }

    /// An event from an already-encoded msgpack payload.
    pub fn from_raw(kind: impl Into<String>, payload: Vec<u8>) -> Event {
        Event {
            kind: kind.into(),
            payload,
        }
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

/// The queue was full; the event was not posted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plugin's {queue} event queue is full ({capacity} events)")]
pub struct QueueFull {
    /// The source whose queue was full.
    pub queue: &'static str,
    /// Its capacity.
    pub capacity: usize,
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
}

struct Queues {
    sources: Vec<(&'static str, VecDeque<Event>)>,
    turn: usize,
    capacity: usize,
    closed: bool,
    /// Readers blocked in `next`: a post wakes one only when there is one (no
    /// futex call per event while the plugin is busy).
    waiting: usize,
}

impl Events {
    /// Empty queues that hold at most `capacity` events per source.
    pub fn new(capacity: usize) -> Events {
        Events(Arc::new(Shared {
            queues: Mutex::new(Queues {
                sources: Vec::new(),
                turn: 0,
                capacity,
                closed: false,
                waiting: 0,
            }),
            ready: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.0.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Posts an event from `source`, or refuses it when that source's queue is full.
    pub fn post(&self, source: &'static str, event: Event) -> Result<(), QueueFull> {
        self.push(source, event, true)
    }

    /// Posts an event that must never be dropped (a connection opening or closing),
    /// whatever the queue's fill.
    pub fn post_always(&self, source: &'static str, event: Event) {
        let _ = self.push(source, event, false);
    }

    fn push(&self, source: &'static str, event: Event, bounded: bool) -> Result<(), QueueFull> {
        let mut q = self.lock();
        let capacity = q.capacity;
        let queue = match q.sources.iter().position(|(s, _)| *s == source) {
            Some(i) => &mut q.sources[i].1,
            None => {
                q.sources.push((source, VecDeque::new()));
                &mut q.sources.last_mut().expect("just pushed").1
            }
        };
        if bounded && queue.len() >= capacity {
            return Err(QueueFull {
                queue: source,
                capacity,
            });
        }
        queue.push_back(event);
        let wake = q.waiting > 0;
        drop(q);
        if wake {
            self.0.ready.notify_one();
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

    /// Takes the next event, taking sources in turn; waits up to `timeout` for one.
    pub fn next(&self, timeout: Duration) -> Next {
        let deadline = Instant::now() + timeout;
        let mut q = self.lock();
        loop {
            if q.closed {
                return Next::Closed;
            }
            let n = q.sources.len();
            for i in 0..n {
                let at = (q.turn + i) % n;
                if let Some(event) = q.sources[at].1.pop_front() {
                    q.turn = at + 1;
                    return Next::Event(event);
                }
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

    /// Closes the queues: waiting and later [`Events::next`] calls return [`Next::Closed`].
    pub fn close(&self) {
        self.lock().closed = true;
        self.0.ready.notify_all();
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
            QueueFull {
                queue: "ws",
                capacity: 1
            }
        );
        e.post_always("ws", ev("ws.close"));
        assert_eq!(e.len(), 2);
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
