;; pulp_step by the envelope's call number n:
;;   0      records 1 ("in the loop"), then loops for ever
;;   other  sleeps n ms in WASI poll_oneoff (where a pending interrupt is seen at
;;          once, without waiting for an epoch tick), then records 2
;; pulp_shutdown records 3, then 1 if a step of this instance entered the loop
;; (0 if not): it ran on the instance whose step was stuck.
(module
  ;; @imports
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  ;; @alloc
  (global $looped (mut i32) (i32.const 0))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $len i32) (result i32)
    (local $n i64)
    (local.set $n (i64.load (local.get $p)))
    (if (i64.eqz (local.get $n)) (then
      (global.set $looped (i32.const 1))
      (call $rec (i32.const 1))
      (loop $forever (br $forever))))
    ;; One relative monotonic clock subscription at 1024 (ABI of wasi: 48 bytes).
    (i64.store (i32.const 1024) (i64.const 42))
    (i32.store8 (i32.const 1032) (i32.const 0))
    (i32.store (i32.const 1040) (i32.const 1))
    (i64.store (i32.const 1048) (i64.mul (local.get $n) (i64.const 1000000)))
    (i64.store (i32.const 1056) (i64.const 0))
    (i32.store16 (i32.const 1064) (i32.const 0))
    (drop (call $poll_oneoff (i32.const 1024) (i32.const 2048) (i32.const 1) (i32.const 3000)))
    (call $rec (i32.const 2))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32)
    (call $rec (i32.const 3))
    (call $rec (global.get $looped))
    (i32.const 0)))
