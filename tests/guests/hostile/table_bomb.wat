;; Grows a table (in halving chunks, down to one element) until it is refused: table
;; elements count against memory_mb like linear memory. pulp_step records the
;; table's size, then what growing memory by one page gives (-1 once the table holds
;; the rest of the budget).
(module
  ;; @imports
  ;; @alloc
  (table $t 0 funcref)
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32)
    (local $n i32)
    (local.set $n (i32.const 65536))
    (loop $more
      (if (i32.eq (table.grow $t (ref.null func) (local.get $n)) (i32.const -1))
        (then (local.set $n (i32.shr_u (local.get $n) (i32.const 1)))))
      (br_if $more (local.get $n)))
    (call $rec (table.size $t))
    (call $rec (memory.grow (i32.const 1)))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
