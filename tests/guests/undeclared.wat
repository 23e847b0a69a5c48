;; Calls test_record (of the gated capability test.record) in pulp_init and returns
;; its status, after logging what last_error says.
(module
  ;; @imports
  ;; @alloc
  (func (export "pulp_init") (param i32 i32) (result i32)
    (local $s i32)
    (local.set $s (call $record (i32.const 0) (i32.const 4)))
    (drop (call $last_error (i32.const 8) (i32.const 12)))
    (drop (call $log (i32.const 3) (i32.load (i32.const 8)) (i32.load (i32.const 12))))
    (local.get $s))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
