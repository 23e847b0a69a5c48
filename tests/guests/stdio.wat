;; Writes "to stdout\n" to fd 1 and "to stderr\n" to fd 2 through WASI in pulp_init.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (func $record (param i32 i32) (result i32) (i32.const 0))
  ;; @alloc
  (data (i32.const 100) "to stdout\nto stderr\n")
  (func (export "pulp_init") (param i32 i32) (result i32)
    ;; iovec at 16: {ptr 100, len 10}; written count at 24
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.const 10))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.store (i32.const 16) (i32.const 110))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
