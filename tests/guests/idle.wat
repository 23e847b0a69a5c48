;; The smallest plugin: one fixed buffer for every envelope, steps that do nothing.
(module
  (memory (export "memory") 1)
  (func (export "pulp_alloc") (param i32) (result i32) (select (i32.const 1024) (i32.const 0) (i32.le_u (local.get 0) (i32.const 60000))))
  (func (export "pulp_free") (param i32 i32))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
