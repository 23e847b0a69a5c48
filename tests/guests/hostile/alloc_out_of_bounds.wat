;; A pulp_alloc that returns a pointer outside memory while $evil is set. pulp_init sets it, makes the host
;; write results (last_error after a failure, entropy_read), records each status,
;; clears it and checks a result write works again.
(module
  ;; @imports
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (global $evil (mut i32) (i32.const 0))
  (data (i32.const 240) "\81\a1n\04")
  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32)
    (if (global.get $evil) (then (return (i32.const 0xFFFFFFF0))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $n)))
    (local.get $p))
  (func $rec (param $v i32)
    (i32.store (i32.const 0) (local.get $v))
    (drop (call $record (i32.const 0) (i32.const 4))))
  (func (export "pulp_init") (param i32 i32) (result i32)
    (global.set $evil (i32.const 1))
    (call $rec (call $log (i32.const 2) (i32.const -8) (i32.const 4)))
    (call $rec (call $last_error (i32.const 8) (i32.const 12)))
    (call $rec (call $entropy_read (i32.const 240) (i32.const 4) (i32.const 8) (i32.const 12)))
    (global.set $evil (i32.const 0))
    (call $rec (call $entropy_read (i32.const 240) (i32.const 4) (i32.const 8) (i32.const 12)))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
