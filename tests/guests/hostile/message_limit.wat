;; Inputs against [limits] max_message_bytes (the test sets 1024) in a 2-page
;; (131072-byte) memory. pulp_init makes each call below and records its status,
;; then last_error's text:
;;   entropy_read, request of 1025 bytes inside memory      over the limit: 11
;;   entropy_read, request of 1024 bytes (zeros)             at the limit: not 11 (3)
;;   entropy_read, 2000 bytes at 0xffff0000                  outside memory and over: 2
;;   entropy_read, 8192 bytes from 126976 (past the end)     straddles the end and over: 2
;;   test_record, 1025 bytes inside memory                   over the limit: 11
(module
  ;; @imports
  ;; @alloc
  (func $check (param $status i32)
    (call $rec (local.get $status))
    (drop (call $last_error (i32.const 16) (i32.const 20)))
    (drop (call $record (i32.load (i32.const 16)) (i32.load (i32.const 20)))))
  (func (export "pulp_init") (param i32 i32) (result i32)
    (call $check (call $entropy_read (i32.const 256) (i32.const 1025) (i32.const 8) (i32.const 12)))
    (call $check (call $entropy_read (i32.const 256) (i32.const 1024) (i32.const 8) (i32.const 12)))
    (call $check (call $entropy_read (i32.const 0xffff0000) (i32.const 2000) (i32.const 8) (i32.const 12)))
    (call $check (call $entropy_read (i32.const 126976) (i32.const 8192) (i32.const 8) (i32.const 12)))
    (call $check (call $record (i32.const 256) (i32.const 1025)))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
