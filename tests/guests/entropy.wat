;; pulp_init: fills 32 bytes at 1004 twice between 0xAA guard bytes (1000..1040),
;; recording the status and the whole 40-byte window each time; then records the
;; msgpack result of entropy_read {n: 16}.
(module
  ;; @imports
  ;; @alloc
  (data (i32.const 240) "\81\a1n\10")
  (func $fill_and_record
    (memory.fill (i32.const 1000) (i32.const 0xAA) (i32.const 40))
    (call $rec (call $entropy_fill (i32.const 1004) (i32.const 32)))
    (drop (call $record (i32.const 1000) (i32.const 40))))
  (func (export "pulp_init") (param i32 i32) (result i32)
    (call $fill_and_record)
    (call $fill_and_record)
    (call $rec (call $entropy_read (i32.const 240) (i32.const 4) (i32.const 8) (i32.const 12)))
    (drop (call $record (i32.load (i32.const 8)) (i32.load (i32.const 12))))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
