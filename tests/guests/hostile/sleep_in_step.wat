;; Sleeps in WASI's poll_oneoff inside pulp_step. The envelope's call number picks
;; how (subscriptions at 1024, events at 2048, event count at 3000):
;;   0  a monotonic clock, relative, 8 s
;;   1  the realtime clock, absolute, at the end of time
;;   2  the monotonic clock, absolute, 2^63 - 1 ns
;;   3  100 ms sleeps in a loop, recording 1 after each
;;   4  1 ms: records errno, event count, the event's userdata and type
;;   5  8 s clock beside an fd_write on stdout (ready at once): records as 4
;;   6  the process CPU clock: records errno
;;   7  no subscriptions: records errno
;; After the sleeps of 0-2 it records 1 at once, with no wasm call or loop in
;; between where an epoch check could stop it: a record means the sleep returned.
(module
  ;; @imports
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  ;; @alloc
  (func $clock (param $at i32) (param $id i32) (param $timeout i64) (param $flags i32)
    (i64.store (local.get $at) (i64.const 42))
    (i32.store8 offset=8 (local.get $at) (i32.const 0))
    (i32.store offset=16 (local.get $at) (local.get $id))
    (i64.store offset=24 (local.get $at) (local.get $timeout))
    (i64.store offset=32 (local.get $at) (i64.const 0))
    (i32.store16 offset=40 (local.get $at) (local.get $flags)))
  (func $poll (param $n i32) (result i32)
    (call $poll_oneoff (i32.const 1024) (i32.const 2048) (local.get $n) (i32.const 3000)))
  (func $report (param $errno i32)
    (call $rec (local.get $errno))
    (call $rec (i32.load (i32.const 3000)))
    (call $rec (i32.load (i32.const 2048)))
    (call $rec (i32.load8_u (i32.const 2058))))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $len i32) (result i32)
    (local $mode i32)
    (local.set $mode (i32.load (local.get $p)))
    (if (i32.eq (local.get $mode) (i32.const 0)) (then
      (call $clock (i32.const 1024) (i32.const 1) (i64.const 8000000000) (i32.const 0))))
    (if (i32.eq (local.get $mode) (i32.const 1)) (then
      (call $clock (i32.const 1024) (i32.const 0) (i64.const -1) (i32.const 1))))
    (if (i32.eq (local.get $mode) (i32.const 2)) (then
      (call $clock (i32.const 1024) (i32.const 1) (i64.const 0x7fffffffffffffff) (i32.const 1))))
    (if (i32.le_u (local.get $mode) (i32.const 2)) (then
      (drop (call $poll_oneoff (i32.const 1024) (i32.const 2048) (i32.const 1) (i32.const 3000)))
      (i32.store (i32.const 0) (i32.const 1))
      (drop (call $record (i32.const 0) (i32.const 4)))
      (return (i32.const 0))))
    (if (i32.eq (local.get $mode) (i32.const 3)) (then
      (call $clock (i32.const 1024) (i32.const 1) (i64.const 100000000) (i32.const 0))
      (loop $again
        (drop (call $poll (i32.const 1)))
        (call $rec (i32.const 1))
        (br $again))))
    (if (i32.eq (local.get $mode) (i32.const 4)) (then
      (call $clock (i32.const 1024) (i32.const 1) (i64.const 1000000) (i32.const 0))
      (call $report (call $poll (i32.const 1)))))
    (if (i32.eq (local.get $mode) (i32.const 5)) (then
      (call $clock (i32.const 1024) (i32.const 1) (i64.const 8000000000) (i32.const 0))
      (i64.store (i32.const 1072) (i64.const 7))
      (i32.store8 (i32.const 1080) (i32.const 2))
      (i32.store (i32.const 1088) (i32.const 1))
      (call $report (call $poll (i32.const 2)))))
    (if (i32.eq (local.get $mode) (i32.const 6)) (then
      (call $clock (i32.const 1024) (i32.const 2) (i64.const 1000000) (i32.const 0))
      (call $rec (call $poll (i32.const 1)))))
    (if (i32.eq (local.get $mode) (i32.const 7)) (then
      (call $rec (call $poll (i32.const 0)))))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
