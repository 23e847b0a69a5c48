;; Real CRUD through storage.sqlite from WAT: pulp_init creates a table, inserts
;; ("a", 42) and ("b", -7) with parameters, updates one, deletes the other, and
;; records each status; pulp_step queries the table and records the raw result.
(module
  (import "pulp" "sqlite_exec" (func $exec (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "pulp" "sqlite_query" (func $query (param i32 i32 i32 i32 i32 i32) (result i32)))
  ;; @imports
  ;; @alloc
  (data (i32.const 1000) "CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
  (data (i32.const 1100) "INSERT INTO kv(k, v) VALUES (?, ?)")
  (data (i32.const 1200) "\92\a1a\2a")
  (data (i32.const 1210) "\92\a1b\f9")
  (data (i32.const 1300) "UPDATE kv SET v = v + 1 WHERE k = 'a'")
  (data (i32.const 1400) "DELETE FROM kv WHERE k = 'b'")
  (data (i32.const 1500) "SELECT k, v FROM kv ORDER BY k")
  (func (export "pulp_init") (param i32 i32) (result i32)
    (call $rec (call $exec (i32.const 1000) (i32.const 55) (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 12)))
    (call $rec (call $exec (i32.const 1100) (i32.const 34) (i32.const 1200) (i32.const 4) (i32.const 8) (i32.const 12)))
    (call $rec (call $exec (i32.const 1100) (i32.const 34) (i32.const 1210) (i32.const 4) (i32.const 8) (i32.const 12)))
    (call $rec (call $exec (i32.const 1300) (i32.const 37) (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 12)))
    (call $rec (call $exec (i32.const 1400) (i32.const 28) (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 12)))
    (i32.const 0))
  (func (export "pulp_step") (param i32 i32) (result i32)
    (call $rec (call $query (i32.const 1500) (i32.const 30) (i32.const 0) (i32.const 0) (i32.const 8) (i32.const 12)))
    (drop (call $record (i32.load (i32.const 8)) (i32.load (i32.const 12))))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
