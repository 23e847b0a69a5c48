//! `[config]` → msgpack, in the wire form Go guests decode into `map[string]any` (ABI §1):
//! integers always int64 (`0xd3`), floats float64, date-times the timestamp extension.

use toml::value::{Date, Datetime, Time};
use toml::{Table, Value};

/// Encodes a config table; key order is the manifest's.
pub fn encode(table: &Table) -> Vec<u8> {
    let mut out = Vec::new();
    write_table(&mut out, table);
    out
}

// Writes to a Vec cannot fail.
fn write_table(out: &mut Vec<u8>, t: &Table) {
    rmp::encode::write_map_len(out, t.len() as u32).expect("Vec write");
    for (k, v) in t {
        rmp::encode::write_str(out, k).expect("Vec write");
        write_value(out, v);
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) => rmp::encode::write_str(out, s).expect("Vec write"),
        Value::Integer(i) => rmp::encode::write_i64(out, *i).expect("Vec write"),
        Value::Float(f) => rmp::encode::write_f64(out, *f).expect("Vec write"),
        Value::Boolean(b) => rmp::encode::write_bool(out, *b).expect("Vec write"),
        Value::Datetime(d) => write_timestamp(out, d),
        Value::Array(a) => {
            rmp::encode::write_array_len(out, a.len() as u32).expect("Vec write");
            a.iter().for_each(|v| write_value(out, v));
        }
        Value::Table(t) => write_table(out, t),
    }
}

/// A TOML date-time as the msgpack timestamp extension (type -1). Local date-times
/// (no offset) are taken as UTC; a bare date is its midnight; a bare time is on 0000-01-01.
fn write_timestamp(out: &mut Vec<u8>, d: &Datetime) {
    let date = d.date.unwrap_or(Date {
        year: 0,
        month: 1,
        day: 1,
    });
    let time = d.time.unwrap_or(Time {
        hour: 0,
        minute: 0,
        second: 0,
        nanosecond: 0,
    });
    let offset_min = match d.offset {
        Some(toml::value::Offset::Custom { minutes }) => minutes as i64,
        _ => 0,
    };
    let days = days_from_civil(date.year as i64, date.month as i64, date.day as i64);
    let secs =
        days * 86_400 + time.hour as i64 * 3600 + time.minute as i64 * 60 + time.second as i64
            - offset_min * 60;
    let nanos = time.nanosecond;
    if secs >> 34 == 0 {
        let v = ((nanos as u64) << 34) | secs as u64;
        if v >> 32 == 0 {
            rmp::encode::write_ext_meta(out, 4, -1).expect("Vec write");
            out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            rmp::encode::write_ext_meta(out, 8, -1).expect("Vec write");
            out.extend_from_slice(&v.to_be_bytes());
        }
    } else {
        rmp::encode::write_ext_meta(out, 12, -1).expect("Vec write");
        out.extend_from_slice(&nanos.to_be_bytes());
        out.extend_from_slice(&secs.to_be_bytes());
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    #[test]
    fn abi_test_vector() {
        let t: Table = "marker = 424242\ngreeting = \"hello from manifest\""
            .parse()
            .unwrap();
        let want = hex(
            "82 a6 6d 61 72 6b 65 72 d3 00 00 00 00 00 06 79 32 a8 67 72 65 65 74 69 6e 67
             b3 68 65 6c 6c 6f 20 66 72 6f 6d 20 6d 61 6e 69 66 65 73 74",
        );
        assert_eq!(encode(&t), want);
    }

    #[test]
    fn every_type_round_trips_through_a_generic_decoder() {
        let t: Table = r#"
small = 1
f = 1.5
b = true
list = [1, "two"]
when = 2025-11-25T00:00:00Z
[nested]
deep = { x = -3 }
"#
        .parse()
        .unwrap();
        let bytes = encode(&t);
        // `1` must be the full-width int64 form, not a fixint.
        assert_eq!(&bytes[1..8], &[0xa5, b's', b'm', b'a', b'l', b'l', 0xd3]);
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let m: Vec<_> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap())
            .collect();
        assert_eq!(m, ["small", "f", "b", "list", "when", "nested"]);
        let when = &v.as_map().unwrap()[4].1;
        // 2025-11-25T00:00:00Z = 1764028800 seconds: the 32-bit timestamp form.
        assert_eq!(
            *when,
            rmpv::Value::Ext(-1, 1_764_028_800u32.to_be_bytes().to_vec())
        );
    }

    #[test]
    fn offsets_and_old_dates_use_the_right_timestamp_forms() {
        let t: Table = "a = 1970-01-01T01:00:00+01:00\nb = 1900-01-01"
            .parse()
            .unwrap();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &encode(&t)[..]).unwrap();
        let m = v.as_map().unwrap();
        assert_eq!(m[0].1, rmpv::Value::Ext(-1, vec![0, 0, 0, 0]));
        let rmpv::Value::Ext(-1, ref b) = m[1].1 else {
            panic!()
        };
        assert_eq!(b.len(), 12);
        assert_eq!(
            i64::from_be_bytes(b[4..].try_into().unwrap()),
            -2_208_988_800
        );
    }
}
