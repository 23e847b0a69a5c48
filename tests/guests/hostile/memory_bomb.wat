;; pulp_step grows memory until it is refused, then aborts like an allocator out of memory.
(module
  ;; @imports
  ;; @alloc
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32)
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
