;; Records what the host hands it: pulp_init's (ptr, len) and config bytes, and
;; every step envelope whole. pulp_step returns output handle 7.
(module
  ;; @imports
  ;; @alloc
  (func (export "pulp_init") (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 8) (local.get $p))
    (i32.store (i32.const 12) (local.get $n))
    (drop (call $record (i32.const 8) (i32.const 8)))
    (drop (call $record (local.get $p) (local.get $n)))
    (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (drop (call $record (local.get $p) (local.get $n)))
    (i32.const 7))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
