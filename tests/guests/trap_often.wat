;; Traps on every 50th step of an instance (a fresh instance starts counting again):
;; the soak test's misbehaving neighbour.
(module
  ;; @imports
  ;; @alloc
  (global $steps (mut i32) (i32.const 0))
  (func (export "pulp_init") (param $p i32) (param $n i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (global.set $steps (i32.add (global.get $steps) (i32.const 1)))
    (if (i32.eqz (i32.rem_u (global.get $steps) (i32.const 50))) (then unreachable))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
