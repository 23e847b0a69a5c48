;; Logs "level N" at levels -1, 0, 1, 2, 3, 4 and 9 in pulp_init.
(module
  ;; @imports
  ;; @alloc
  (data (i32.const 100) "level -1level 0 level 1 level 2 level 3 level 4 level 9 ")
  (func (export "pulp_init") (param i32 i32) (result i32)
    (local $i i32)
    (drop (call $log (i32.const -1) (i32.const 100) (i32.const 8)))
    (loop $each
      (drop (call $log (local.get $i) (i32.add (i32.const 108) (i32.mul (local.get $i) (i32.const 8))) (i32.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $each (i32.lt_u (local.get $i) (i32.const 5))))
    (drop (call $log (i32.const 9) (i32.const 148) (i32.const 7)))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
