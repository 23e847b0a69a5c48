;; pulp_step never returns; init and shutdown behave. Declares test.record so the
;; tests can count how often its instance was attached and detached.
(module
  ;; @imports
  ;; @alloc
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (loop $forever (br $forever)) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
