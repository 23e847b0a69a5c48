;; greet: calls `demo_greet` from pulp_init with the name in its config.
;;
;; The config must be the msgpack map {"name": <a string under 32 bytes>}, which is
;; what `[config] name = "..."` gives. pulp_init first checks the import's answers
;; to bad input (1 for an empty name, 2 for a name outside memory) and returns 100
;; or 101 when they are wrong; then it returns demo_greet's status for the name
;; (99 when the manifest does not declare `demo.greet`).
(module
  (import "pulp" "demo_greet" (func $greet (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))

  (func (export "pulp_alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (if (i32.gt_u (i32.add (local.get $p) (local.get $n)) (i32.const 65536))
      (then (return (i32.const 0))))
    (global.set $heap (i32.add (local.get $p) (local.get $n)))
    (local.get $p))
  (func (export "pulp_free") (param i32 i32))

  (func (export "pulp_init") (param $cfg i32) (param $len i32) (result i32)
    (local $n i32)
    ;; {"name": fixstr}: 0x81, 0xa4 "name", then 0xa0|len and the name.
    (if (i32.lt_u (local.get $len) (i32.const 7)) (then (return (i32.const 4))))
    (if (i32.or (i32.ne (i32.load (local.get $cfg)) (i32.const 0x616ea481))
                (i32.ne (i32.load16_u (i32.add (local.get $cfg) (i32.const 4))) (i32.const 0x656d)))
      (then (return (i32.const 4))))
    (local.set $n (i32.load8_u (i32.add (local.get $cfg) (i32.const 6))))
    (if (i32.ne (i32.and (local.get $n) (i32.const 0xe0)) (i32.const 0xa0))
      (then (return (i32.const 4))))
    (local.set $n (i32.and (local.get $n) (i32.const 0x1f)))
    (if (i32.gt_u (i32.add (local.get $n) (i32.const 7)) (local.get $len)) (then (return (i32.const 4))))
    ;; Bad input first: an empty name is 1, one outside memory 2 (99 for both when
    ;; the manifest does not declare demo.greet).
    (if (i32.ne (call $greet (i32.const 0) (i32.const 0)) (i32.const 1))
      (then (if (i32.ne (call $greet (i32.const 0) (i32.const 0)) (i32.const 99))
        (then (return (i32.const 100))))))
    (if (i32.ne (call $greet (i32.const 65530) (i32.const 64)) (i32.const 2))
      (then (if (i32.ne (call $greet (i32.const 0) (i32.const 0)) (i32.const 99))
        (then (return (i32.const 101))))))
    (call $greet (i32.add (local.get $cfg) (i32.const 7)) (local.get $n)))

  (func (export "pulp_step") (param i32 i32) (result i32) (i32.const 0))
  (func (export "pulp_shutdown") (result i32) (i32.const 0)))
