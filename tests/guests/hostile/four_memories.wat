;; Four linear memories (the prelude's and three more) grown one page at a time, in
;; turn, until every one is refused: memory_mb must bound their sum, not each one.
;; pulp_step records the pages obtained in all four, then what growing a table by
;; one element gives (-1 once memories hold the whole budget).
(module
  ;; @imports
  ;; @alloc
  (memory $m1 0)
  (memory $m2 0)
  (memory $m3 0)
  (table $t 0 funcref)
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32)
    (local $grew i32)
    (loop $pass
      (local.set $grew (i32.const 0))
      (if (i32.ne (memory.grow 0 (i32.const 1)) (i32.const -1)) (then (local.set $grew (i32.const 1))))
      (if (i32.ne (memory.grow $m1 (i32.const 1)) (i32.const -1)) (then (local.set $grew (i32.const 1))))
      (if (i32.ne (memory.grow $m2 (i32.const 1)) (i32.const -1)) (then (local.set $grew (i32.const 1))))
      (if (i32.ne (memory.grow $m3 (i32.const 1)) (i32.const -1)) (then (local.set $grew (i32.const 1))))
      (br_if $pass (local.get $grew)))
    (call $rec (i32.add (i32.add (memory.size 0) (memory.size $m1))
                        (i32.add (memory.size $m2) (memory.size $m3))))
    (call $rec (table.grow $t (ref.null func) (i32.const 1)))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
