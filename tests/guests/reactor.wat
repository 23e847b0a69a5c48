;; Shaped like a Go `-buildmode=c-shared` module: an `_initialize` export that must
;; run once before anything else. pulp_init fails (1) unless it ran.
(module
  (memory (export "memory") 1)
  (global $ready (mut i32) (i32.const 0))
  (func (export "_initialize") (global.set $ready (i32.add (global.get $ready) (i32.const 1))))
  (func (export "pulp_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.ne (global.get $ready) (i32.const 1)))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
