;; heartbeat: the smallest real Pulp plugin, in WebAssembly text (no compiler needed).
;;
;; - pulp_init reads `marker` (an int64) and `greeting` (a string) from the msgpack
;;   config and logs the greeting;
;; - pulp_step logs "heartbeat: tick N" once per second of wall time;
;; - probe_last_call / probe_config_marker report the last call number and the marker.
(module
  (import "pulp" "log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (global $marker (mut i64) (i64.const 0))
  (global $last_call (mut i64) (i64.const -1))
  (global $last_sec (mut i64) (i64.const 0))
  (data (i32.const 16) "marker")
  (data (i32.const 32) "greeting")
  (data (i32.const 48) "heartbeat: tick ")
  (data (i32.const 128) "heartbeat: shutting down")

  ;; A bump allocator; freeing the newest block gives it back (the host frees in order).
  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.div_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                                            (i32.const 65536)))
                    (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))

  (func (export "pulp_free") (param $p i32) (param $n i32)
    (if (i32.eq (i32.add (local.get $p) (local.get $n)) (global.get $heap))
      (then (global.set $heap (local.get $p)))))

  ;; The address just after the msgpack fixstr key `key` in buf, or -1.
  (func $find (param $buf i32) (param $len i32) (param $key i32) (param $klen i32) (result i32)
    (local $i i32) (local $j i32)
    (block $done
      (loop $scan
        (br_if $done (i32.gt_s (i32.add (local.get $i) (i32.add (local.get $klen) (i32.const 1))) (local.get $len)))
        (if (i32.eq (i32.load8_u (i32.add (local.get $buf) (local.get $i))) (i32.or (i32.const 0xa0) (local.get $klen)))
          (then
            (local.set $j (i32.const 0))
            (block $differ
              (loop $cmp
                (br_if $differ (i32.ne (i32.load8_u (i32.add (i32.add (local.get $buf) (local.get $i)) (i32.add (local.get $j) (i32.const 1))))
                                       (i32.load8_u (i32.add (local.get $key) (local.get $j)))))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br_if $cmp (i32.lt_u (local.get $j) (local.get $klen)))
                (return (i32.add (i32.add (local.get $buf) (local.get $i)) (i32.add (local.get $klen) (i32.const 1))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.const -1))

  (func (export "pulp_init") (param $ptr i32) (param $len i32) (result i32)
    (local $v i32) (local $b i32) (local $k i32) (local $acc i64)
    (if (i32.eqz (local.get $len)) (then (return (i32.const 0))))
    ;; marker: 0xd3 + 8 big-endian bytes
    (local.set $v (call $find (local.get $ptr) (local.get $len) (i32.const 16) (i32.const 6)))
    (if (i32.ge_s (local.get $v) (i32.const 0))
      (then
        (if (i32.eq (i32.load8_u (local.get $v)) (i32.const 0xd3))
          (then
            (loop $bytes
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (local.set $acc (i64.or (i64.shl (local.get $acc) (i64.const 8))
                                      (i64.load8_u (i32.add (local.get $v) (local.get $k)))))
              (br_if $bytes (i32.lt_u (local.get $k) (i32.const 8))))
            (global.set $marker (local.get $acc))))))
    ;; greeting: fixstr or str8, logged as it lies in the config buffer
    (local.set $v (call $find (local.get $ptr) (local.get $len) (i32.const 32) (i32.const 8)))
    (if (i32.ge_s (local.get $v) (i32.const 0))
      (then
        (local.set $b (i32.load8_u (local.get $v)))
        (if (i32.eq (i32.and (local.get $b) (i32.const 0xe0)) (i32.const 0xa0))
          (then (drop (call $log (i32.const 2) (i32.add (local.get $v) (i32.const 1)) (i32.and (local.get $b) (i32.const 31))))))
        (if (i32.eq (local.get $b) (i32.const 0xd9))
          (then (drop (call $log (i32.const 2) (i32.add (local.get $v) (i32.const 2)) (i32.load8_u (i32.add (local.get $v) (i32.const 1)))))))))
    (i32.const 0))

  (func (export "pulp_step") (param $ptr i32) (param $len i32) (result i32)
    (local $call i64) (local $sec i64) (local $at i32) (local $n i64)
    (local.set $call (i64.load (local.get $ptr)))
    (global.set $last_call (local.get $call))
    (local.set $sec (i64.div_u (i64.load offset=8 (local.get $ptr)) (i64.const 1000000000)))
    (if (i64.ne (local.get $sec) (global.get $last_sec))
      (then
        (global.set $last_sec (local.get $sec))
        ;; digits of the call number, backwards, ending at 112
        (local.set $at (i32.const 112))
        (local.set $n (local.get $call))
        (loop $digit
          (local.set $at (i32.sub (local.get $at) (i32.const 1)))
          (i32.store8 (local.get $at) (i32.wrap_i64 (i64.add (i64.rem_u (local.get $n) (i64.const 10)) (i64.const 48))))
          (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
          (br_if $digit (i64.ne (local.get $n) (i64.const 0))))
        (local.set $at (i32.sub (local.get $at) (i32.const 16)))
        (memory.copy (local.get $at) (i32.const 48) (i32.const 16))
        (drop (call $log (i32.const 2) (local.get $at) (i32.sub (i32.const 112) (local.get $at))))))
    (i32.const 0))

  (func (export "pulp_shutdown") (result i32)
    (drop (call $log (i32.const 2) (i32.const 128) (i32.const 24)))
    (i32.const 0))

  (func (export "probe_last_call") (result i64) (global.get $last_call))
  (func (export "probe_config_marker") (result i64) (global.get $marker)))
