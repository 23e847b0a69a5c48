;; Every step spins for 5 ms of the monotonic clock: a plugin that always has CPU work.
(module
  (import "wasi_snapshot_preview1" "clock_time_get" (func $now (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "pulp_alloc") (param i32) (result i32) (select (i32.const 1024) (i32.const 0) (i32.le_u (local.get 0) (i32.const 60000))))
  (func (export "pulp_free") (param i32 i32))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (local $end i64)
    (drop (call $now (i32.const 1) (i64.const 0) (i32.const 512)))
    (local.set $end (i64.add (i64.load (i32.const 512)) (i64.const 5000000)))
    (loop $spin
      (drop (call $now (i32.const 1) (i64.const 0) (i32.const 512)))
      (br_if $spin (i64.lt_u (i64.load (i32.const 512)) (local.get $end))))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
