;; pulp_step records 1, sleeps 300 ms in WASI poll_oneoff, then traps: a test stops
;; the host during the sleep, so the trap comes while it is stopping.
(module
  ;; @imports
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  ;; @alloc
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $len i32) (result i32)
    (call $rec (i32.const 1))
    ;; One relative monotonic clock subscription at 1024 (ABI of wasi: 48 bytes).
    (i64.store (i32.const 1024) (i64.const 42))
    (i32.store8 (i32.const 1032) (i32.const 0))
    (i32.store (i32.const 1040) (i32.const 1))
    (i64.store (i32.const 1048) (i64.const 300000000))
    (i64.store (i32.const 1056) (i64.const 0))
    (i32.store16 (i32.const 1064) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 1024) (i32.const 2048) (i32.const 1) (i32.const 3000)))
    unreachable)
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
