//! The msgpack result of `sqlite_query`, `{columns: [str], rows: [[value]]}`, built as
//! the rows arrive. Every byte goes through [`Encoder::append`], which checks the size
//! limit before the buffer grows: a value that would pass it is refused before it is
//! copied, so the host never holds more than the limit (plus one msgpack header).

use pulp_ext::{Budget, Charge, OverBudget};
use rusqlite::types::ValueRef;

/// The result would pass the limit; nothing past the limit was copied.
#[derive(Debug)]
pub(crate) struct Full {
    /// Whole rows encoded before the one that did not fit.
    pub rows: u32,
    /// Set when the plugin's host memory budget, not the result limit, was passed.
    pub budget: Option<OverBudget>,
}

/// A `{columns, rows}` map being built.
pub(crate) struct Encoder {
    out: Vec<u8>,
    /// What `out` costs the plugin's host memory budget, grown with it.
    charge: Charge,
    max: usize,
    rows: u32,
    /// Where the 4-byte row count of the `rows` array (msgpack array32) sits.
    count_at: usize,
}

impl Encoder {
    /// Starts the map with its column names; `max` bounds the whole result, and
    /// every byte is charged to `budget` before it is written.
    pub(crate) fn new<'c>(
        columns: impl ExactSizeIterator<Item = &'c str>,
        max: usize,
        budget: &Budget,
    ) -> Result<Encoder, Full> {
        let mut e = Encoder {
            out: Vec::new(),
            charge: budget.charge_anyway(0),
            max,
            rows: 0,
            count_at: 0,
        };
        let mut head = Vec::new();
        rmp::encode::write_map_len(&mut head, 2).expect("Vec write");
        rmp::encode::write_str(&mut head, "columns").expect("Vec write");
        rmp::encode::write_array_len(&mut head, columns.len() as u32).expect("Vec write");
        e.append(&head, &[])?;
        for c in columns {
            e.append(str_head(c.len()).bytes(), c.as_bytes())?;
        }
        head.clear();
        rmp::encode::write_str(&mut head, "rows").expect("Vec write");
        // array32 with a count patched in by `finish`: valid msgpack, and the rows
        // are written once, in place.
        head.extend_from_slice(&[0xdd, 0, 0, 0, 0]);
        e.append(&head, &[])?;
        e.count_at = e.out.len() - 4;
        Ok(e)
    }

    /// Starts a row of `n` values.
    pub(crate) fn row(&mut self, n: usize) -> Result<(), Full> {
        let h = Head::new(|w| {
            rmp::encode::write_array_len(w, n as u32).expect("fits");
        });
        self.append(h.bytes(), &[])?;
        self.rows += 1;
        Ok(())
    }

    /// One SQLite value: NULL nil, INTEGER int, REAL float64, TEXT str, BLOB bin.
    pub(crate) fn value(&mut self, v: ValueRef<'_>) -> Result<(), Full> {
        let (h, body): (Head, &[u8]) = match v {
            ValueRef::Null => (Head::new(|w| rmp::encode::write_nil(w).expect("fits")), &[]),
            ValueRef::Integer(i) => (
                Head::new(|w| {
                    rmp::encode::write_sint(w, i).expect("fits");
                }),
                &[],
            ),
            ValueRef::Real(f) => (
                Head::new(|w| rmp::encode::write_f64(w, f).expect("fits")),
                &[],
            ),
            // SQLite does not check TEXT is UTF-8; its bytes go out as they are.
            ValueRef::Text(t) => (str_head(t.len()), t),
            ValueRef::Blob(b) => (
                Head::new(|w| {
                    rmp::encode::write_bin_len(w, b.len() as u32).expect("fits");
                }),
                b,
            ),
        };
        self.append(h.bytes(), body)
    }

    /// The one place the result grows: `head` then `body`, or nothing if both would
    /// not fit under the limit or the plugin's host memory budget.
    fn append(&mut self, head: &[u8], body: &[u8]) -> Result<(), Full> {
        let n = head.len() + body.len();
        // The row being built does not count.
        let rows = self.rows.saturating_sub(1);
        if self.out.len() + n > self.max {
            return Err(Full { rows, budget: None });
        }
        if let Err(e) = self.charge.grow(n) {
            return Err(Full {
                rows,
                budget: Some(e),
            });
        }
        self.out.extend_from_slice(head);
        self.out.extend_from_slice(body);
        Ok(())
    }

    /// The finished map.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let at = self.count_at;
        self.out[at..at + 4].copy_from_slice(&self.rows.to_be_bytes());
        self.out
    }
}

/// A msgpack header (at most 9 bytes), built on the stack.
struct Head {
    buf: [u8; 9],
    len: usize,
}

impl Head {
    fn new(write: impl FnOnce(&mut &mut [u8])) -> Head {
        let mut buf = [0u8; 9];
        let mut w: &mut [u8] = &mut buf;
        write(&mut w);
        let len = 9 - w.len();
        Head { buf, len }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A msgpack str header for `len` bytes.
fn str_head(len: usize) -> Head {
    Head::new(|w| {
        rmp::encode::write_str_len(w, len as u32).expect("fits");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_decodes_as_the_abi_map() {
        let mut e = Encoder::new(["a", "b"].into_iter(), 1 << 20, &Budget::default()).unwrap();
        e.row(2).unwrap();
        e.value(ValueRef::Integer(-3)).unwrap();
        e.value(ValueRef::Text(b"hi")).unwrap();
        e.row(2).unwrap();
        e.value(ValueRef::Null).unwrap();
        e.value(ValueRef::Blob(&[1, 2])).unwrap();
        let out = e.finish();
        let v = rmpv::decode::read_value(&mut &out[..]).unwrap();
        assert_eq!(
            v["columns"],
            rmpv::Value::Array(vec![rmpv::Value::from("a"), rmpv::Value::from("b")])
        );
        assert_eq!(
            v["rows"],
            rmpv::Value::Array(vec![
                rmpv::Value::Array(vec![(-3).into(), "hi".into()]),
                rmpv::Value::Array(vec![rmpv::Value::Nil, rmpv::Value::Binary(vec![1, 2])]),
            ])
        );
    }

    #[test]
    fn a_value_over_the_limit_is_refused_before_it_is_copied() {
        let mut e = Encoder::new(["x"].into_iter(), 100, &Budget::default()).unwrap();
        let before = e.out.len();
        e.row(1).unwrap();
        let big = vec![7u8; 200];
        let full = e.value(ValueRef::Blob(&big)).unwrap_err();
        assert_eq!(full.rows, 0);
        assert_eq!(e.out.len(), before + 1, "only the row header was written");
        assert!(e.out.capacity() < 200, "the blob was never copied");
    }

    #[test]
    fn an_empty_result_has_an_empty_rows_array() {
        let out = Encoder::new([].into_iter(), 1024, &Budget::default())
            .unwrap()
            .finish();
        let v = rmpv::decode::read_value(&mut &out[..]).unwrap();
        assert_eq!(v["rows"], rmpv::Value::Array(vec![]));
    }

    #[test]
    fn every_byte_is_charged_to_the_budget_before_it_is_written() {
        let budget = Budget::new(64);
        let mut e = Encoder::new(["x"].into_iter(), 1 << 20, &budget).unwrap();
        e.row(1).unwrap();
        let full = e.value(ValueRef::Blob(&[0; 100])).unwrap_err();
        assert!(full.budget.is_some());
        assert!(budget.used() < 64);
        drop(e);
        assert_eq!(budget.used(), 0);
    }
}
