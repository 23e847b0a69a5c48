;; pulp_step recurses without end.
(module
  ;; @imports
  ;; @alloc
  (func $down (param $n i32) (result i32)
    (i32.add (call $down (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (call $down (i32.const 0)))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
