;; pulp_step recurses without end on call number 0; on any other call it records
;; 1 and returns 0.
(module
  ;; @imports
  ;; @alloc
  (func $down (param $n i32) (result i32)
    (i32.add (call $down (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $len i32) (result i32)
    (if (i64.eqz (i64.load (local.get $p))) (then (return (call $down (i32.const 0)))))
    (call $rec (i32.const 1))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
