;; The storage benchmark guest: an idle step runs `SELECT v FROM t WHERE id = ?` with
;; [42] and frees the result; a step with an event runs `INSERT INTO t(v) VALUES (?)`
;; with ["x"].
(module
  (import "pulp" "sqlite_exec" (func $exec (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "pulp" "sqlite_query" (func $query (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (data (i32.const 1000) "SELECT v FROM t WHERE id = ?")
  (data (i32.const 1100) "\91\2a")
  (data (i32.const 1200) "INSERT INTO t(v) VALUES (?)")
  (data (i32.const 1300) "\91\a1x")
  (func $alloc (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $n)))
    (local.get $p))
  (func $free (export "pulp_free") (param $p i32) (param $n i32)
    (if (i32.eq (i32.add (local.get $p) (local.get $n)) (global.get $heap))
      (then (global.set $heap (local.get $p)))))
  (func (export "pulp_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_step") (param $p i32) (param $n i32) (result i32)
    (if (i32.eqz (i32.load offset=16 (local.get $p)))
      (then
        (if (call $query (i32.const 1000) (i32.const 28) (i32.const 1100) (i32.const 2) (i32.const 8) (i32.const 12))
          (then (return (i32.const 1))))
        (call $free (i32.load (i32.const 8)) (i32.load (i32.const 12))))
      (else
        (if (call $exec (i32.const 1200) (i32.const 27) (i32.const 1300) (i32.const 3) (i32.const 8) (i32.const 12))
          (then (return (i32.const 1))))
        (call $free (i32.load (i32.const 8)) (i32.load (i32.const 12)))))
    (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
