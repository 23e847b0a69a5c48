  ;; Shared prelude: every import a test guest may use.
  (import "pulp" "log" (func $log (param i32 i32 i32) (result i32)))
  (import "pulp" "entropy_fill" (func $entropy_fill (param i32 i32) (result i32)))
  (import "pulp" "entropy_read" (func $entropy_read (param i32 i32 i32 i32) (result i32)))
  (import "pulp" "last_error" (func $last_error (param i32 i32) (result i32)))
  (import "pulp" "test_record" (func $record (param i32 i32) (result i32)))
