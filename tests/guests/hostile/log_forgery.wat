;; Tries to forge host log lines: in pulp_init it logs, writes to stdout and writes
;; to stderr a text with a newline, a carriage return, an ANSI colour escape and a
;; line that looks like one the host would print for another plugin.
(module
  ;; @imports
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  ;; @alloc
  (data (i32.const 100) "ok\n2026-01-01T00:00:00.000000Z  INFO pulp: plugin \"other\" forged\r\1b[31mred\1b[0m\n")
  (func (export "pulp_init") (param i32 i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 100) (i32.const 77)))
    ;; iovec at 16: {ptr 100, len 78}; written count at 24
    (i32.store (i32.const 16) (i32.const 100))
    (i32.store (i32.const 20) (i32.const 78))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 24)))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
