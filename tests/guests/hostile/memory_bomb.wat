;; pulp_step, on call number 0: grows memory one page at a time until it is
;; refused, records the pages it holds and what one more page gives (-1), then
;; aborts like an allocator out of memory. On any other call it records its
;; memory's pages (2 on a fresh instance) and returns 0.
(module
  ;; @imports
  ;; @alloc
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $len i32) (result i32)
    (if (i64.ne (i64.load (local.get $p)) (i64.const 0)) (then
      (call $rec (memory.size))
      (return (i32.const 0))))
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    (call $rec (memory.size))
    (call $rec (memory.grow (i32.const 1)))
    unreachable)
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
